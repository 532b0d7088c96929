// Where runs live in the store's `runs` database, and how run ids are made. A run's number n
// is given in order by the daemon (1, 2, ...); its id is "run-" + n. Keys (BE64/BE32: big-endian,
// so LMDB's key order is numeric order):
//
//   key                              value (envelope version 1, JSON)
//   "r" BE64(n)                      the run record (daemon/run/orchestrator.h, RunRecord layout)
//   "t" BE64(n) task_id              the state of a task of the run (orchestrator.h)
//   "o" BE64(n) task_id              the output of a succeeded task of the run
//   "e" BE64(n) BE32(seq)            event seq of the run (seq = 1, 2, ...)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chainctl::daemon {

std::string RunId(uint64_t n);                                // "run-42"
std::optional<uint64_t> ParseRunId(std::string_view run_id);  // "run-42" -> 42
std::string RunKey(uint64_t n);
std::string RunTaskKey(uint64_t n, std::string_view task_id);
std::string RunTaskPrefix(uint64_t n);
std::string RunOutputKey(uint64_t n, std::string_view task_id);
std::string RunEventPrefix(uint64_t n);
std::string RunEventKey(uint64_t n, uint32_t seq);
// The run number of a RunKey, or 0 if `key` is not one.
uint64_t RunNumberOfKey(std::string_view key);

}  // namespace chainctl::daemon
