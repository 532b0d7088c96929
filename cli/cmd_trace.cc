// chainctl trace RUN -o FILE (cmd_trace.h).
#include "cli/cmd_trace.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <utility>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/ci_report.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// What the run's events say about readiness.
struct EventIndex {
  std::vector<int64_t> run_starts;  // run_started and run_resumed, in order
  // task -> its task_finished events: (time, state)
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> finished;
  // (task, attempt that failed) -> when the next attempt was due (time + backoff_ms)
  std::map<std::pair<std::string, int>, int64_t> retry_due;
};

EventIndex IndexEvents(const json& events) {
  EventIndex index;
  if (!events.is_array()) return index;
  for (const json& e : events) {
    if (!e.is_object()) continue;
    std::string type = e.value("type", "");
    int64_t time = e.value("time_unix_ms", int64_t{0});
    if (type == "run_started" || type == "run_resumed") {
      index.run_starts.push_back(time);
    } else if (type == "task_finished") {
      index.finished[e.value("task_id", "")].emplace_back(time, e.value("state", ""));
    } else if (type == "task_retrying") {
      index.retry_due[{e.value("task_id", ""), e.value("attempt", 0)}] =
          time + e.value("backoff_ms", int64_t{0});
    }
  }
  return index;
}

// A task's dependencies and whether one success among them makes it ready.
struct TaskDeps {
  std::vector<std::string> deps;
  bool one_success = false;
};

std::map<std::string, TaskDeps> DepsOf(const json& definition) {
  std::map<std::string, TaskDeps> all;
  if (!definition.is_object() || !definition.contains("tasks")) return all;
  for (const json& task : definition["tasks"]) {
    if (!task.is_object() || !task.contains("task_id") || !task["task_id"].is_string()) continue;
    TaskDeps& d = all[task["task_id"].get<std::string>()];
    if (task.contains("dependencies") && task["dependencies"].is_array()) {
      for (const json& dep : task["dependencies"]) {
        if (dep.is_string()) d.deps.push_back(dep.get<std::string>());
      }
    }
    d.one_success = task.value("trigger_rule", "") == "one_success";
  }
  return all;
}

// When attempt `attempt` of `task`, started at `start`, became ready (TraceAttempts).
std::optional<int64_t> ReadyTime(const std::string& task, int attempt, int64_t start,
                                 const EventIndex& index,
                                 const std::map<std::string, TaskDeps>& deps) {
  if (auto due = index.retry_due.find({task, attempt - 1}); due != index.retry_due.end()) {
    return std::min(due->second, start);
  }
  auto mine = deps.find(task);
  std::optional<int64_t> base;
  for (int64_t t : index.run_starts) {
    if (t <= start) base = t;
  }
  if (mine == deps.end() || !base) return std::nullopt;
  std::optional<int64_t> last_end, first_success;
  for (const std::string& dep : mine->second.deps) {
    auto ends = index.finished.find(dep);
    if (ends == index.finished.end()) continue;
    std::optional<int64_t> end;  // its latest end before our start
    for (const auto& [time, state] : ends->second) {
      if (time > start) continue;
      end = time;
      if (state == "succeeded" && (!first_success || time < *first_success)) first_success = time;
    }
    if (end && (!last_end || *end > *last_end)) last_end = end;
  }
  std::optional<int64_t> from =
      mine->second.one_success && first_success ? first_success : last_end;
  return std::min(std::max(*base, from.value_or(*base)), start);
}

// µs from t0 (ms).
int64_t Micros(int64_t ms, int64_t t0_ms) { return (ms - t0_ms) * 1000; }

// An "X" (complete) event; `args` null: none.
json Complete(const std::string& name, const char* category, int64_t ts, int64_t dur, int pid,
              int tid, json args) {
  json e = {{"name", name},
            {"cat", category},
            {"ph", "X"},
            {"ts", ts},
            {"dur", std::max<int64_t>(dur, 0)},
            {"pid", pid},
            {"tid", tid}};
  if (!args.is_null()) e["args"] = std::move(args);
  return e;
}

// The attempt and its parts ("cold start"/"warm start", "work") on its slot; its wait
// ("TASK queued") on its queue lane.
void AddAttempt(const TraceAttempt& a, int64_t t0, json* events) {
  int tid = a.slot + 1;
  int64_t ready = Micros(a.ready_ms, t0), start = Micros(a.start_ms, t0);
  int64_t end = std::max(Micros(a.end_ms, t0), start);
  std::string start_kind = !a.cold ? "unknown" : *a.cold ? "cold" : "warm";
  json args = {{"attempt", a.attempt},
               {"state", a.status},
               {"start", start_kind},
               {"queue_ms", a.ready_known ? json(a.start_ms - a.ready_ms) : json(nullptr)}};
  if (a.startup_ms) args["startup_ms"] = *a.startup_ms;
  if (!a.cause.empty()) args["cause"] = a.cause;
  events->push_back(Complete(a.task_id, "attempt", start, end - start, 1, tid, args));
  int64_t work_from = start;
  if (a.startup_ms) {
    int64_t startup = std::min(static_cast<int64_t>(*a.startup_ms * 1000), end - start);
    std::string name = start_kind == "unknown" ? "start-up" : start_kind + " start";
    events->push_back(Complete(name, "startup", start, startup, 1, tid, {}));
    work_from = start + std::max<int64_t>(startup, 0);
  }
  events->push_back(Complete("work", "work", work_from, end - work_from, 1, tid, {}));
  if (a.queue_lane >= 0) {
    events->push_back(Complete(a.task_id + " queued", "queue", ready, start - ready, 2,
                               a.queue_lane + 1, {{"attempt", a.attempt}}));
  }
}

// "M" events: process `pid` named `name`, and its `tracks` tracks named `track` 1, 2, ...
void AddNames(int pid, const std::string& name, int tracks, const std::string& track,
              json* events) {
  events->push_back({{"name", "process_name"},
                     {"ph", "M"},
                     {"pid", pid},
                     {"tid", 0},
                     {"args", {{"name", name}}}});
  events->push_back({{"name", "process_sort_index"},
                     {"ph", "M"},
                     {"pid", pid},
                     {"tid", 0},
                     {"args", {{"sort_index", pid}}}});
  for (int t = 1; t <= tracks; ++t) {
    events->push_back({{"name", "thread_name"},
                       {"ph", "M"},
                       {"pid", pid},
                       {"tid", t},
                       {"args", {{"name", track + " " + std::to_string(t)}}}});
    events->push_back({{"name", "thread_sort_index"},
                       {"ph", "M"},
                       {"pid", pid},
                       {"tid", t},
                       {"args", {{"sort_index", t}}}});
  }
}

}  // namespace

std::vector<TraceAttempt> TraceAttempts(const json& records, const json& events,
                                        const json& definition) {
  std::vector<TraceAttempt> attempts;
  if (!records.is_array()) return attempts;
  EventIndex index = IndexEvents(events);
  std::map<std::string, TaskDeps> deps = DepsOf(definition);
  for (const json& r : records) {
    if (!r.is_object()) continue;
    TraceAttempt a;
    a.task_id = r.value("task_id", "");
    a.attempt = r.value("attempt", 1);
    a.start_ms = r.value("start_unix_ms", int64_t{0});
    a.end_ms = std::max(r.value("end_unix_ms", int64_t{0}), a.start_ms);
    a.status = r.value("status", "");
    a.cause = r.value("cause", "");
    if (r.contains("cold") && r["cold"].is_boolean()) a.cold = r["cold"].get<bool>();
    if (r.contains("startup_ms") && r["startup_ms"].is_number()) {
      a.startup_ms = r["startup_ms"].get<double>();
    }
    std::optional<int64_t> ready = ReadyTime(a.task_id, a.attempt, a.start_ms, index, deps);
    a.ready_known = ready.has_value();
    a.ready_ms = ready.value_or(a.start_ms);
    attempts.push_back(std::move(a));
  }
  return attempts;
}

std::vector<int> AssignLanes(const std::vector<std::pair<int64_t, int64_t>>& spans) {
  std::vector<size_t> order(spans.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return spans[x] < spans[y]; });
  std::vector<int> lanes(spans.size());
  std::vector<int64_t> busy_until;  // per lane: the end of its last span
  for (size_t i : order) {
    auto free = std::find_if(busy_until.begin(), busy_until.end(),
                             [&](int64_t until) { return until <= spans[i].first; });
    if (free == busy_until.end()) free = busy_until.insert(busy_until.end(), 0);
    *free = spans[i].second;
    lanes[i] = static_cast<int>(free - busy_until.begin());
  }
  return lanes;
}

int AssignSlots(std::vector<TraceAttempt>* attempts) {
  std::vector<std::pair<int64_t, int64_t>> runs, waits;
  std::vector<size_t> waited;  // attempts with a wait, in the order of `waits`
  for (size_t i = 0; i < attempts->size(); ++i) {
    const TraceAttempt& a = (*attempts)[i];
    runs.emplace_back(a.start_ms, a.end_ms);
    if (a.ready_ms < a.start_ms) {
      waits.emplace_back(a.ready_ms, a.start_ms);
      waited.push_back(i);
    }
  }
  std::vector<int> slots = AssignLanes(runs), lanes = AssignLanes(waits);
  int count = 0;
  for (size_t i = 0; i < attempts->size(); ++i) {
    (*attempts)[i].slot = slots[i];
    (*attempts)[i].queue_lane = -1;
    count = std::max(count, slots[i] + 1);
  }
  for (size_t k = 0; k < waited.size(); ++k) (*attempts)[waited[k]].queue_lane = lanes[k];
  return count;
}

json TraceJson(const json& run, const std::vector<TraceAttempt>& attempts) {
  int64_t t0 = run.value("created_unix_ms", int64_t{0});
  for (const TraceAttempt& a : attempts) t0 = std::min(t0, a.ready_ms);
  std::string run_id = run.value("run_id", ""), chain_id = run.value("chain_id", "");
  std::string status = run.value("status", "");
  int slots = 0, lanes = 0;
  for (const TraceAttempt& a : attempts) {
    slots = std::max(slots, a.slot + 1);
    lanes = std::max(lanes, a.queue_lane + 1);
  }
  json events = json::array();
  AddNames(1, run_id + " (" + chain_id + ", " + status + ")", slots, "slot", &events);
  if (lanes > 0) AddNames(2, run_id + ": waiting for a slot", lanes, "queue", &events);
  for (const TraceAttempt& a : attempts) AddAttempt(a, t0, &events);
  return {{"traceEvents", std::move(events)},
          {"displayTimeUnit", "ms"},
          {"otherData", {{"run_id", run_id}, {"chain_id", chain_id}, {"status", status}}}};
}

namespace {

// The run's events (GET /runs/{id}/events, NDJSON) as an array; empty if chaind has none.
json RunEvents(const DaemonOptions& daemon, const std::string& run_id) {
  HttpClientResponse response;
  std::string why;
  json events = json::array();
  if (!CallDaemon(daemon, {"GET", "/runs/" + run_id + "/events", "", ""}, &response, &why) ||
      response.status != 200) {
    return events;
  }
  std::istringstream lines(response.body);
  for (std::string line; std::getline(lines, line);) {
    json event = json::parse(line, nullptr, false);
    if (event.is_object()) events.push_back(std::move(event));
  }
  return events;
}

// The definition of the run's chain version; null if chaind no longer has it.
json ChainDefinition(const DaemonOptions& daemon, const json& run) {
  HttpClientResponse response;
  std::string why;
  std::string target = "/chains/" + run.value("chain_id", "") +
                       "?version=" + std::to_string(run.value("chain_version", 0));
  if (!CallDaemon(daemon, {"GET", target, "", ""}, &response, &why) || response.status != 200) {
    return nullptr;
  }
  json chain = json::parse(response.body, nullptr, false);
  return chain.is_object() && chain.contains("definition") ? chain["definition"] : json();
}

}  // namespace

int RunTrace(const TraceOptions& options, std::ostream& out, std::ostream& err) {
  DaemonOptions daemon = ResolveDaemonOptions(options.daemon);
  HttpClientResponse response;
  if (int status = Call(daemon, {"GET", "/runs/" + options.run_id, "", ""}, &response, err);
      status != kExitOk) {
    return status;
  }
  json run = json::parse(response.body, nullptr, false);
  json records;
  std::string why;
  if (!run.is_object() || !GetRunRecords(daemon, options.run_id, &records, &why)) {
    err << "chainctl: cannot trace " << options.run_id << ": "
        << (why.empty() ? "the run is not JSON" : why) << "\n";
    return kExitUnreachable;
  }
  std::vector<TraceAttempt> attempts =
      TraceAttempts(records, RunEvents(daemon, options.run_id), ChainDefinition(daemon, run));
  AssignSlots(&attempts);
  std::string text = TraceJson(run, attempts).dump(-1, ' ', false, json::error_handler_t::replace);
  if (options.file == "-") {
    out << text << "\n";
    return kExitOk;
  }
  std::ofstream file(options.file, std::ios::binary | std::ios::trunc);
  if (file) file << text << "\n";
  if (file) file.close();
  if (!file) {
    err << "chainctl: cannot write " << options.file << ": " << std::strerror(errno) << "\n";
    return kExitInvalid;
  }
  return kExitOk;
}

}  // namespace chainctl::cli
