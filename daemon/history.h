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
// keys, they are 1 to 256 bytes without NUL (ValidateHistoryRecord). The meta key is read and
// written inside each appending transaction, so a transaction that is aborted (or run again by
// Store::Write after growing the map) leaves no trace.
//
// JSONL v1. ToJsonlV1 writes the v1 fields (times in seconds, with ms precision; a cancelled
// attempt as "failed") and these chainctl extras, each only when it says something, so that a
// record read from a v1 file is written back unchanged:
//   "cancelled": true        status was "cancelled" (then "status" is "failed")
//   "attempt": int           when not 1
//   "chain_version": int     when known (not 0)
//   "task_version": int      when known (not 0)
//   "cause": string          when not empty
//   "startup_ms": number, "max_rss_kb": int, "bytes_staged": int   when known
// FromJsonlV1 reads them back; other unknown fields are ignored.
//
// Threads: as Store. Append and AppendNow write (AppendNow blocks on fsync: run it on a
// thread-pool thread); Find and Count only read and may run on the loop thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/store.h"

namespace chainctl::daemon {

// One attempt of one task.
struct HistoryRecord {
  uint64_t seq = 0;                       // assigned by Append: 1, 2, 3, ...; 0 = not stored yet
  std::string run_id, chain_id, task_id;  // required: 1 to 256 bytes, no NUL
  std::string instance_id;                // the concrete job (imported traces); "" = none
  int chain_version = 0;                  // 0 = unknown (imported)
  int task_version = 0;                   // 0 = unknown (imported)
  int attempt = 1;                        // 1, 2, ... (retries)
  int64_t start_unix_ms = 0;              // >= 0
  int64_t end_unix_ms = 0;                // >= start_unix_ms
  std::string status;                     // "succeeded" | "failed" | "cancelled"
  // "" on success; else one line: "exit 3", "signal 9 (SIGKILL)", "timeout",
  // "output_schema: /rows: ...", "spawn: ...".
  std::string cause;
  // Measurements, unset when unknown.
  std::optional<bool> cold;              // a new process (or container) had to be started
  std::optional<double> startup_ms;      // from start to the task's program running
  std::optional<double> cpu_s;           // user + system CPU time
  std::optional<int64_t> max_rss_kb;     // peak resident set size
  std::optional<uint64_t> bytes_in;      // bytes read as input
  std::optional<uint64_t> bytes_out;     // bytes written as output
  std::optional<uint64_t> bytes_staged;  // bytes staged (prefetched) for the attempt

  bool operator==(const HistoryRecord&) const = default;
};

// Checks what every stored record satisfies: ids as above, a known status, attempt >= 1,
// versions >= 0, 0 <= start <= end.
bool ValidateHistoryRecord(const HistoryRecord& record, std::string* err);

// The API form: every field, times in ms, the unset measurements and an empty instance_id
// left out.
nlohmann::json HistoryRecordToJson(const HistoryRecord& record);
// Reads the API form. Required: run_id, chain_id, task_id, start_unix_ms, end_unix_ms,
// status; the others default as in HistoryRecord. The result passes ValidateHistoryRecord.
bool HistoryRecordFromJson(const nlohmann::json& j, HistoryRecord* record, std::string* err);

// One line of history JSONL v1 (and the extras above); `record.seq` is not written.
nlohmann::json ToJsonlV1(const HistoryRecord& record);
// Reads one JSONL v1 record, checking the required fields and the type of every known field
// (the message names the field, not the line: that is the caller's). seq is left 0.
bool FromJsonlV1(const nlohmann::json& j, HistoryRecord* record, std::string* err);

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
  // Append in a transaction of its own (import, tests). Blocks on fsync.
  bool AppendNow(std::vector<HistoryRecord> records, std::string* err);

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
