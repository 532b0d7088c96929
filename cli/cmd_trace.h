// chainctl trace RUN -o FILE: a run as Chrome trace JSON (the Trace Event Format), which
// Perfetto and chrome://tracing open, like ninjatracing or `bazel --profile` (DESIGN.md §7).
//
// One track (thread) per slot; each attempt is an "X" event on the lowest slot free over its
// whole span (ninjatracing's rule), from when it was ready to its end, holding up to three
// "X" events: "queued" (ready to started), "cold start" or "warm start" (start-up_ms, from its
// history record) and "work" (the rest). A slot is therefore a lane that holds one attempt at
// a time, its wait included: while tasks wait for --jobs, there are more lanes than jobs.
//
// chaind records no "ready" time: it is derived from the run's events (TraceAttempts).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/daemon_client.h"

namespace chainctl::cli {

struct TraceOptions {
  DaemonOptions daemon;
  std::string run_id;
  std::string file = "-";  // -o: "-" for stdout
};
// Exit status: 0, or Call's for a run chaind does not know (or cannot answer for).
int RunTrace(const TraceOptions& options, std::ostream& out, std::ostream& err);

// --- Pure parts, for RunTrace and the tests. ---

struct TraceAttempt {
  std::string task_id;
  int attempt = 1;
  int64_t ready_ms = 0;  // when it could have started; == start_ms when ready_known is false
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool ready_known = false;
  std::string status;  // the history record's: succeeded | failed | cancelled
  std::string cause;
  std::optional<bool> cold;
  std::optional<double> startup_ms;
  int slot = 0;  // from 0; set by AssignSlots
};

// The attempts of a run, in the order of `records` (GET /history?run=, the API form). The
// ready time of attempt k > 1 after a retry is its task_retrying event's time + backoff_ms;
// otherwise the latest of the run's start (run_started, or run_resumed before it) and its
// dependencies' ends (task_finished; for trigger_rule one_success, the first that succeeded),
// the dependencies and rules from `definition` (the chain, GET /chains/{id}?version=). Without
// a definition or events, ready is not known. Never after the start.
std::vector<TraceAttempt> TraceAttempts(const nlohmann::json& records, const nlohmann::json& events,
                                        const nlohmann::json& definition);

// Gives each attempt the lowest slot free over [ready_ms, end_ms) (a slot is free again at the
// end of its last attempt), taking them in order of ready_ms, then end_ms. Returns the number
// of slots used.
int AssignSlots(std::vector<TraceAttempt>* attempts);

// The trace: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {run_id, chain_id,
// status}}. Times in µs from the run's created_unix_ms; pid 1 is the run, tid N+1 slot N.
nlohmann::json TraceJson(const nlohmann::json& run, const std::vector<TraceAttempt>& attempts);

}  // namespace chainctl::cli
