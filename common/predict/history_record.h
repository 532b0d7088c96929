// One record of the execution history (DESIGN.md §5 "history"): one attempt of one task, as
// chaind stores it (daemon/store/history.h) and as history JSONL v1 (../shared/traces/README.md),
// the export and import format, carries it. Shared by chaind (storage, import) and chainctl
// (reading files to import).
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
//   "cached": true           the result came from the task cache (DESIGN.md §4 "Cache")
// FromJsonlV1 reads them back; other unknown fields are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace chainctl {

// The longest run_id, chain_id or task_id in bytes: ids are parts of the store's index keys,
// which must stay far below LMDB's 511-byte key limit.
inline constexpr size_t kMaxHistoryIdBytes = 256;

// One attempt of one task.
struct HistoryRecord {
  uint64_t seq = 0;                       // assigned when stored: 1, 2, 3, ...; 0 = not stored
  std::string run_id, chain_id, task_id;  // required: 1 to kMaxHistoryIdBytes bytes, no NUL
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
  // The task was not run: its result came from the task cache (status "succeeded", no process,
  // so `cold` and `startup_ms` are unset). Unset for a task that ran.
  std::optional<bool> cached;

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
// (the message names the field, not the line: that is the caller's). seq is left 0. The
// result passes ValidateHistoryRecord.
bool FromJsonlV1(const nlohmann::json& j, HistoryRecord* record, std::string* err);

}  // namespace chainctl
