// chainctl trace RUN -o FILE: a run as Chrome trace JSON (the Trace Event Format), which
// Perfetto and chrome://tracing open, like ninjatracing or `bazel --profile` (DESIGN.md §7).
//
// Process 1 is the run: one track (thread) per slot, each attempt an "X" event on the lowest
// slot free over [start, end) (ninjatracing's rule; so no more slots than ran at once, at most
// --jobs), holding "cold start" or "warm start" (startup_ms, from its history record) and
// "work" (the rest). Process 2 holds the queue waits: an "X" event "TASK queued" from when the
// attempt was ready to its start, on the lowest lane free over that span. Trace viewers nest
// events of one track by time, so a wait cannot share its attempt's slot (another attempt
// runs there meanwhile).
//
// chaind records no "ready" time: it is derived from the run's events (TraceAttempts).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
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
  int slot = 0;         // from 0; set by AssignSlots
  int queue_lane = -1;  // from 0; -1: no wait (ready_ms == start_ms); set by AssignSlots
};

// The attempts of a run, in the order of `records` (GET /history?run=, the API form). The
// ready time of attempt k > 1 after a retry is its task_retrying event's time + backoff_ms;
// otherwise the latest of the run's start (run_started, or run_resumed before it) and its
// dependencies' ends (task_finished; for trigger_rule one_success, the first that succeeded),
// the dependencies and rules from `definition` (the chain, GET /chains/{id}?version=). Without
// a definition or events, ready is not known. Never after the start.
std::vector<TraceAttempt> TraceAttempts(const nlohmann::json& records, const nlohmann::json& events,
                                        const nlohmann::json& definition);

// Gives each span [from, to) the lowest lane free over it (a lane is free again at the end of
// its last span), taking them in order of from, then to; returns each span's lane.
std::vector<int> AssignLanes(const std::vector<std::pair<int64_t, int64_t>>& spans);

// Sets each attempt's slot (AssignLanes over [start_ms, end_ms)) and queue_lane (over
// [ready_ms, start_ms), for those that waited). Returns the number of slots.
int AssignSlots(std::vector<TraceAttempt>* attempts);

// The trace: {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {run_id, chain_id,
// status}}. Times in µs from the run's created_unix_ms (or the earliest ready time); pid 1 tid
// N+1 is slot N, pid 2 tid N+1 queue lane N; "M" events name them.
nlohmann::json TraceJson(const nlohmann::json& run, const std::vector<TraceAttempt>& attempts);

}  // namespace chainctl::cli
