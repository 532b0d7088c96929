// The execution history of chaind (DESIGN.md §5 "history"): one record per task attempt,
// appended to the store's `history` database, queried by task, chain, run and time, bounded by
// a retention limit, and converted to and from history JSONL v1 (../shared/traces/README.md),
// the export and import format.
//
// Layout of the `history` database (also in store.h's table; values are store envelopes):
//
//   key                          value
//   ---------------------------  ----------------------------------------------------------
//   "m"                          1: JSON {"count": records kept, "next_seq": the seq the next
//                                   record gets}; absent in an empty history = {0, 1}
//   "s" BE64(seq)                1: JSON HistoryRecordToJson(record) without "seq"
//   "r" run_id "\0" BE64(seq)    empty: index by run
//   "t" task_id "\0" BE64(seq)   empty: index by task
//   "c" chain_id "\0" BE64(seq)  empty: index by chain
//
// Seq numbers are 1, 2, 3, ... in append order and never reused, even after the records they
// named were dropped. Every record has exactly one key in each index; as the ids are parts of
// keys, they are 1 to kMaxHistoryIdBytes (256) bytes without NUL (ValidateHistoryRecord). The
// meta key is read and written inside each appending transaction, so a transaction that is
// aborted (or run again by Store::Write after growing the map) leaves no trace.
//
// The record and its JSON forms (the API's and JSONL v1) are common/predict/history_record.h's:
// chainctl::HistoryRecord and its functions, named unqualified here as chainctl encloses
// chainctl::daemon.
//
// Threads: as Store. Append and AppendNow write (AppendNow blocks on fsync: run it on a
// thread-pool thread); Find and Count only read and may run on the loop thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/predict/history_record.h"
#include "daemon/store/store.h"

namespace chainctl::daemon {

struct HistoryQuery {
  // Filters: "" = any. Records match all given filters. ({}: designated initializers may
  // leave them out without -Wmissing-field-initializers.)
  std::string task_id{};
  std::string chain_id{};
  std::string run_id{};
  int64_t since_unix_ms = 0;                                    // start_unix_ms >= since
  int64_t until_unix_ms = std::numeric_limits<int64_t>::max();  // start_unix_ms < until
  // Seq bounds, the cursor of paging: only seq > after_seq, and only seq < before_seq if
  // before_seq is not 0. Next page: ascending, after_seq = the last seq returned; newest
  // first, before_seq = the last seq returned.
  uint64_t after_seq = 0;
  uint64_t before_seq = 0;
  size_t limit = 1000;        // at most this many records (0: none)
  bool newest_first = false;  // order by seq, descending instead of ascending
};

inline constexpr uint64_t kDefaultHistoryRetention = 1'000'000;

class History {
 public:
  // `store` is not owned and must outlive the history. At most `retention` (>= 1) records are
  // kept: appending more drops the oldest.
  explicit History(Store* store, uint64_t retention = kDefaultHistoryRetention);

  // Appends `records` in the caller's write transaction, setting their `seq` (in order), and
  // drops the oldest records with their index keys while more than `retention` are kept. On
  // false, `txn` may hold part of the work: the caller must abort it. Nothing is written if a
  // record fails ValidateHistoryRecord. May run again in a retried transaction (it reads the
  // next seq and the count from the transaction, never from this object). After a restart
  // with a lower retention, the first Append drops the whole surplus in its transaction.
  bool Append(WriteTxn& txn, std::vector<HistoryRecord>* records, std::string* err);
  // Append in a transaction of its own (import, tests), setting the records' `seq` (left
  // unspecified on false). Blocks on fsync.
  bool AppendNow(std::vector<HistoryRecord>* records, std::string* err);
  // An import (POST /history): AppendNow, but idempotent. A record is left out when one with
  // the same import key — (run_id, task_id, instance_id, attempt, start_unix_ms): the same
  // attempt of the same task in the same run — is stored already or comes earlier in
  // `records`, so a file imported again, or an import killed mid-way and run again, stores
  // nothing twice. On true, `records` holds the records stored, in order, with their seq, and
  // `*skipped` how many were left out; on false nothing is stored and `records` is as given.
  // Cost: one walk of the run index per distinct run_id in `records`, decoding the run's
  // stored records.
  bool Import(std::vector<HistoryRecord>* records, size_t* skipped, std::string* err);

  // The records matching `query`, in seq order, from one read snapshot. Cost: Find walks the
  // index of the most selective id filter given (run, else task, else chain; without one, the
  // records themselves) from the cursor on, and decodes only the records it passes until
  // `limit` match. So a run, task or chain query decodes about as many records as it returns
  // when its other filters hold for most of them; a time window alone, or a filter that is
  // not the one walked, may pass over (and decode) many records that do not match.
  bool Find(const HistoryQuery& query, std::vector<HistoryRecord>* out, std::string* err);

  // The number of records kept.
  bool Count(uint64_t* count, std::string* err);

  uint64_t retention() const { return retention_; }
  // Records decoded by Find since construction (each costs a JSON parse): for tests and
  // metrics.
  uint64_t records_decoded() const { return records_decoded_.load(std::memory_order_relaxed); }

 private:
  Store* store_;
  uint64_t retention_;
  std::atomic<uint64_t> records_decoded_{0};
};

}  // namespace chainctl::daemon
