// chainctl get run, list runs, logs, history: looking at runs and what they did.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <ostream>
#include <thread>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// The time from `from` to `to` (Unix ms) as "1.25s"; "" if either is missing.
std::string Duration(const json& from, const json& to) {
  if (!from.is_number() || !to.is_number()) return "";
  return FormatSeconds(to.get<int64_t>() - from.get<int64_t>());
}

std::string Field(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return "";
  const json& v = object[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

int RunGetRun(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  json run;
  int status = Fetch(options.daemon, "/runs/" + options.run_id, options.output, out, err, &run);
  if (status != kExitOk || run.is_null()) return status;
  out << run.value("run_id", "") << ": chain " << run.value("chain_id", "") << " v"
      << run.value("chain_version", 0) << ", " << run.value("status", "") << ", started "
      << FormatTime(run.value("created_unix_ms", int64_t{0})) << " UTC";
  if (run.contains("ended_unix_ms")) {
    out << ", took " << Duration(run["created_unix_ms"], run["ended_unix_ms"]);
  }
  out << "\n";
  if (run.contains("error")) out << "error: " << run.value("error", "") << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& t : run["tasks"]) {
    rows.push_back({t.value("task_id", ""), t.value("state", ""),
                    std::to_string(t.value("attempts", 0)),
                    t.contains("started_unix_ms") && t.contains("ended_unix_ms")
                        ? Duration(t["started_unix_ms"], t["ended_unix_ms"])
                        : "",
                    t.value("error", "")});
  }
  PrintTable(out, {"task", "state", "attempts", "time", "error"}, rows);
  return kExitOk;
}

int RunListRuns(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  std::string target = "/runs?limit=" + std::to_string(options.limit);
  if (!options.chain.empty()) target += "&chain=" + options.chain;
  json body;
  int status = Fetch(options.daemon, target, options.output, out, err, &body);
  if (status != kExitOk || body.is_null()) return status;
  std::vector<std::vector<std::string>> rows;
  for (const json& r : body["runs"]) {
    std::string states;
    for (const auto& [state, count] : r["task_states"].items()) {
      states += (states.empty() ? "" : " ") + state + ":" + count.dump();
    }
    rows.push_back(
        {r.value("run_id", ""), r.value("chain_id", ""), r.value("status", ""),
         FormatTime(r.value("created_unix_ms", int64_t{0})),
         r.contains("ended_unix_ms") ? Duration(r["created_unix_ms"], r["ended_unix_ms"]) : "",
         states});
  }
  PrintTable(out, {"run", "chain", "status", "started (UTC)", "time", "tasks"}, rows);
  return kExitOk;
}

namespace {

// The task's state in a run record, or "".
std::string TaskState(const json& run, const std::string& task) {
  for (const json& t : run["tasks"]) {
    if (t.value("task_id", "") == task) return t.value("state", "");
  }
  return "";
}

// `logs -f`: prints the task's log as it grows until the task has ended (a bounded pause
// between looks, like tail -f).
int FollowLog(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  size_t offset = 0;
  for (;;) {
    json run;
    int status = Fetch(options.daemon, "/runs/" + options.run_id, "table", out, err, &run);
    if (status != kExitOk) return status;
    std::string state = TaskState(run, options.task);
    if (state.empty()) {
      err << "chainctl: " << options.run_id << " has no task " << options.task << "\n";
      return kExitNotFound;
    }
    bool ended = state != "pending" && state != "ready" && state != "running";
    HttpClientResponse response;
    std::string why;
    std::string target = "/runs/" + options.run_id + "/tasks/" + options.task +
                         "/log?offset=" + std::to_string(offset);
    if (CallDaemon(ResolveDaemonOptions(options.daemon), {"GET", target, "", ""}, &response,
                   &why) &&
        response.status == 200) {
      out << response.body << std::flush;
      offset += response.body.size();
      for (const auto& [name, value] : response.headers) {
        if (name == "x-chainctl-log-end") offset = std::stoull(value);
      }
    }
    if (ended) return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace

int RunLogs(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  if (options.follow) {
    if (options.task.empty()) {
      err << "chainctl: logs -f needs a TASK\n";
      return kExitInvalid;
    }
    return FollowLog(options, out, err);
  }
  std::vector<std::string> tasks;
  if (!options.task.empty()) {
    tasks.push_back(options.task);
  } else {
    json run;
    if (int status = Fetch(options.daemon, "/runs/" + options.run_id, "table", out, err, &run);
        status != kExitOk) {
      return status;
    }
    for (const json& t : run["tasks"]) {
      if (t.value("attempts", 0) > 0) tasks.push_back(t.value("task_id", ""));
    }
  }
  for (const std::string& task : tasks) {
    HttpClientResponse response;
    std::string target = "/runs/" + options.run_id + "/tasks/" + task + "/log";
    if (int status = Call(options.daemon, {"GET", target, "", ""}, &response, err);
        status != kExitOk) {
      return status;
    }
    if (options.task.empty()) {
      if (response.body.empty()) continue;
      out << "==> " << task << " <==\n";
    }
    out << response.body;
    if (options.task.empty() && !response.body.empty() && response.body.back() != '\n') out << "\n";
  }
  return kExitOk;
}

int RunHistory(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  std::string filter;
  if (!options.task.empty()) filter += "&task=" + options.task;
  if (!options.chain.empty()) filter += "&chain=" + options.chain;
  if (!options.run_id.empty()) filter += "&run=" + options.run_id;
  if (options.action == "export") {
    std::ofstream file;
    std::ostream* sink = &out;
    if (options.file != "-") {
      file.open(options.file, std::ios::binary | std::ios::trunc);
      if (!file) {
        err << "chainctl: cannot write " << options.file << "\n";
        return kExitInvalid;
      }
      sink = &file;
    }
    uint64_t after = 0;
    size_t written = 0;
    for (;;) {
      json page;
      std::string target =
          "/history?format=jsonl&limit=5000&after=" + std::to_string(after) + filter;
      if (int status = Fetch(options.daemon, target, "table", out, err, &page); status != kExitOk) {
        return status;
      }
      for (const json& record : page["records"]) {
        *sink << record.dump() << "\n";
        ++written;
      }
      if (!page.contains("next")) break;
      after = page["next"].get<uint64_t>();
    }
    sink->flush();
    if (!*sink) {
      err << "chainctl: writing " << options.file << " failed\n";
      return kExitUnreachable;
    }
    if (options.file != "-") err << written << " record(s) written to " << options.file << "\n";
    return kExitOk;
  }
  json body;
  std::string target = "/history?order=newest&limit=" + std::to_string(options.limit) + filter;
  int status = Fetch(options.daemon, target, options.output, out, err, &body);
  if (status != kExitOk || body.is_null()) return status;
  std::vector<std::vector<std::string>> rows;
  for (const json& r : body["records"]) {
    rows.push_back({FormatTime(r.value("start_unix_ms", int64_t{0})), r.value("run_id", ""),
                    r.value("task_id", ""), std::to_string(r.value("attempt", 1)),
                    r.value("status", ""), Duration(r["start_unix_ms"], r["end_unix_ms"]),
                    Field(r, "cause")});
  }
  PrintTable(out, {"start (UTC)", "run", "task", "attempt", "status", "time", "cause"}, rows);
  return kExitOk;
}

}  // namespace chainctl::cli
