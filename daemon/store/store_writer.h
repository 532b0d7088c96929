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
// Failure (DESIGN.md §4 "Retention": an end is acknowledged only once stored). A commit that
// fails (a full disk, an I/O error) loses nothing: its writes go back in front of the pending
// ones (a newer Put of the same key wins) and the writer is degraded: it retries them alone,
// after 100 ms, then twice as long each time up to kMaxRetryMs, until a commit succeeds, which
// ends the degraded state. Meanwhile Sync callbacks wait (they are called with ok=true once
// their writes are stored), and the owner refuses new work (degraded(), failure()). Only
// after GiveUpOnFailure (chaind is stopping) is a failed commit dropped: logged as lost, its
// Sync callbacks called with ok=false.
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

#include "daemon/store/store.h"

namespace chainctl::daemon {

class StoreWriter {
 public:
  // An extra write, run inside the batch's transaction; may run more than once (Store::Write
  // retries after growing the map), so it must be idempotent within a transaction.
  using Op = std::function<bool(WriteTxn& txn, std::string* err)>;
  // Called on the loop when the batch holding the writes made before it is committed; `ok`
  // false (with `err`) only if that commit failed after GiveUpOnFailure.
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
  // Runs `idle` once nothing is pending or in flight (never while degraded, until
  // GiveUpOnFailure).
  void WhenIdle(std::function<void()> idle);
  // chaind is stopping: retry now, once; a commit that fails from now on is dropped (logged
  // as lost) instead of retried, so that WhenIdle comes.
  void GiveUpOnFailure();

  // The last commit failed and its writes wait for a retry: `failure()` says why (the store's
  // error), `failing_since_ms()` since when (Unix ms), `unstored()` how many writes wait.
  bool degraded() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }
  int64_t failing_since_ms() const { return failing_since_ms_; }
  size_t unstored() const {
    return pending_.puts.size() + pending_.later.size() + pending_.ops.size() +
           (degraded() && in_flight_ ? in_flight_writes_ : 0);
  }
  // The message of the 507 that refuses new work while degraded: "the store cannot write
  // (ERR) for 12 s; 6 write(s) wait for a retry: new runs and chain writes are refused until
  // it can (free space in STATE_DIR?)".
  std::string DegradedMessage() const;

  size_t commits() const { return commits_; }  // transactions committed so far
  size_t writes() const { return writes_; }    // Puts, Deletes and ops committed so far
  bool busy() const {
    return in_flight_ || !pending_.empty() || !pending_.durable.empty() || timer_ != nullptr;
  }

  static constexpr uint64_t kFirstRetryMs = 100;
  static constexpr uint64_t kMaxRetryMs = 5000;

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
  void StartTimer(uint64_t ms);
  void CloseTimer();
  void Committed(Batch batch, bool ok, const std::string& err);
  void Failed(Batch batch, const std::string& err);  // back in front of pending_, retry later
  void Recovered();

  uv_loop_t* loop_;
  Store* store_;
  Batch pending_;
  uint64_t delay_ms_;
  uv_timer_t* timer_ = nullptr;  // while writes wait for delay_ms_ or, degraded, for a retry
  bool in_flight_ = false;
  size_t in_flight_writes_ = 0;  // Puts and ops of the commit in flight
  std::string failure_;          // "" unless degraded: the error of the last failed commit
  int64_t failing_since_ms_ = 0;
  uint64_t retry_ms_ = 0;  // the wait before the next retry, while degraded
  size_t failed_tries_ = 0;
  bool give_up_ = false;  // GiveUpOnFailure was called
  std::vector<std::function<void()>> idle_;
  size_t commits_ = 0;
  size_t writes_ = 0;
};

}  // namespace chainctl::daemon
