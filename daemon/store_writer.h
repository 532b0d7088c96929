// Group commit for the loop thread (DESIGN.md §1: fsync never on the loop). Writes are
// collected as they are made and committed together in one transaction on the libuv thread
// pool; while one commit runs, the next batch gathers. So a run that changes state a
// thousand times a second costs a few commits a second, not a thousand fsyncs, and nothing
// on the loop waits for the disk.
//
// Order: batches commit one after the other, in the order their writes were made; within a
// batch, Put on the same (db, key) keeps the last value (a run's record rewritten ten times
// is written once). Ops run after the Puts of their batch, in the order added.
//
// Loop thread only, except that ops run on a thread-pool thread (they must only touch the
// transaction and what they own).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/store.h"

namespace chainctl::daemon {

class StoreWriter {
 public:
  // An extra write, run inside the batch's transaction; may run more than once (Store::Write
  // retries after growing the map), so it must be idempotent within a transaction.
  using Op = std::function<bool(WriteTxn& txn, std::string* err)>;
  // Called on the loop when the batch holding the writes made before it is committed; `ok`
  // false (with `err`) if that commit failed.
  using Durable = std::function<void(bool ok, const std::string& err)>;

  // `store` is not owned and must outlive the writer and its commits. Writes nobody waits
  // for (no Sync) are committed `delay_ms` after the first of them at the latest (0: at once).
  StoreWriter(uv_loop_t* loop, Store* store, uint64_t delay_ms = 5)
      : loop_(loop), store_(store), delay_ms_(delay_ms) {}
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;
  // Pending writes must have been waited for (WhenIdle) before the writer goes.
  ~StoreWriter() = default;

  void Put(Db db, std::string key, std::string value);
  // Like Put, with the value made on the loop when the batch is handed to the commit: a
  // record that changes often is encoded once per commit, not once per change. A value of
  // nullopt writes nothing.
  using MakeValue = std::function<std::optional<std::string>()>;
  void PutLater(Db db, std::string key, MakeValue value);
  void Delete(Db db, std::string key);
  void Add(Op op);
  // Runs `durable` once everything written so far is committed (at once if nothing is
  // pending or in flight).
  void Sync(Durable durable);
  // Runs `idle` once nothing is pending or in flight.
  void WhenIdle(std::function<void()> idle);

  size_t commits() const { return commits_; }  // transactions committed so far
  size_t writes() const { return writes_; }    // Puts, Deletes and ops committed so far
  bool busy() const { return in_flight_ || !pending_.empty() || timer_ != nullptr; }

 private:
  struct Batch {
    std::map<std::pair<Db, std::string>, std::optional<std::string>> puts;  // nullopt: delete
    std::map<std::pair<Db, std::string>, MakeValue> later;
    std::vector<Op> ops;
    std::vector<Durable> durable;
    bool empty() const { return puts.empty() && later.empty() && ops.empty(); }
  };
  void Kick();    // starts a commit of the pending batch (now or after delay_ms_)
  void Commit();  // starts a commit of the pending batch if none is in flight
  void CloseTimer();
  void Committed(Batch batch, bool ok, const std::string& err);

  uv_loop_t* loop_;
  Store* store_;
  Batch pending_;
  uint64_t delay_ms_;
  uv_timer_t* timer_ = nullptr;  // while writes wait for delay_ms_
  bool in_flight_ = false;
  std::vector<std::function<void()>> idle_;
  size_t commits_ = 0;
  size_t writes_ = 0;
};

}  // namespace chainctl::daemon
