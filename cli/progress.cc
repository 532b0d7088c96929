#include "cli/progress.h"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "cli/output.h"

namespace chainctl::cli {

using nlohmann::json;

bool EscapesWork(int fd) {
  const char* term = std::getenv("TERM");
  return isatty(fd) && !(term && std::string_view(term) == "dumb");
}

std::optional<ProgressMode> ParseProgressMode(const std::string& name, bool stderr_is_tty) {
  if (name == "auto") return stderr_is_tty ? ProgressMode::kTty : ProgressMode::kPlain;
  if (name == "tty") return ProgressMode::kTty;
  if (name == "plain") return ProgressMode::kPlain;
  if (name == "quiet") return ProgressMode::kQuiet;
  return std::nullopt;
}

std::string Progress::Paint(const std::string& text, const char* sgr) const {
  return color_ ? std::string("\x1b[") + sgr + "m" + text + "\x1b[0m" : text;
}

void Progress::Clear() {
  if (mode_ == ProgressMode::kTty && status_shown_) {
    err_ << "\r\x1b[K";
    status_shown_ = false;
  }
}

void Progress::Status() {
  if (mode_ != ProgressMode::kTty) return;
  std::string names;
  for (const std::string& task : running_) names += (names.empty() ? "" : ", ") + task;
  std::string line = "[" + std::to_string(finished_) + "/" + std::to_string(total_) + "] " + names;
  if (line.size() > 100) line = line.substr(0, 97) + "...";
  err_ << "\r" << line << "\x1b[K" << std::flush;
  status_shown_ = true;
}

void Progress::OnEvent(const json& event) {
  if (mode_ == ProgressMode::kQuiet) return;
  std::string type = event.value("type", "");
  std::string task = event.value("task_id", "");
  if (type == "run_started") {
    total_ = event.value("tasks", size_t{0});
    if (mode_ == ProgressMode::kPlain) {
      err_ << event.value("run_id", "") << ": chain " << event.value("chain_id", "") << " v"
           << event.value("chain_version", 0) << ", " << total_ << " task(s)\n";
    }
  } else if (type == "run_resumed") {
    size_t again = event.value("tasks", json::array()).size();
    finished_ = total_ >= again ? total_ - again : 0;
    if (mode_ == ProgressMode::kPlain) {
      err_ << event.value("run_id", "") << ": resumed, " << again << " task(s) to run again\n";
    }
  } else if (type == "task_started") {
    running_.insert(task);
    if (mode_ == ProgressMode::kPlain) {
      err_ << "[" << finished_ << "/" << total_ << "] start " << task;
      if (event.value("attempt", 1) > 1) err_ << " (attempt " << event.value("attempt", 1) << ")";
      err_ << "\n";
    }
  } else if (type == "task_retrying") {
    running_.erase(task);
    Clear();
    err_ << Paint("retry", "33") << " " << task << ": " << event.value("error", "") << " (again in "
         << FormatSeconds(event.value("backoff_ms", int64_t{0})) << ")\n";
  } else if (type == "task_finished") {
    running_.erase(task);
    ++finished_;
    std::string state = event.value("state", "");
    ended_[task] = state;
    Clear();
    std::string mark = state == "succeeded" ? Paint("ok", "32")
                       : state == "cached"  ? Paint("cached", "36")
                       : state == "failed"  ? Paint("FAILED", "31")
                                            : Paint(state, "33");
    err_ << "[" << finished_ << "/" << total_ << "] " << mark << " " << task;
    if (event.contains("duration_ms"))
      err_ << " " << FormatSeconds(event.value("duration_ms", int64_t{0}));
    if (event.contains("error")) err_ << ": " << event.value("error", "");
    err_ << "\n";
  } else if (type == "run_finished") {
    Clear();
    std::string status = event.value("status", "");
    err_ << event.value("run_id", "") << " "
         << (status == "succeeded" ? Paint(status, "32") : Paint(status, "31")) << " in "
         << FormatSeconds(event.value("duration_ms", int64_t{0}));
    if (!ended_.empty()) err_ << " (" << CountStates(ended_) << ")";
    err_ << "\n";
    return;
  }
  Status();
}

std::string CountStates(const std::map<std::string, std::string>& ended) {
  std::map<std::string, size_t> counts;
  for (const auto& [task, state] : ended) ++counts[state];
  std::string text = std::to_string(ended.size()) + (ended.size() == 1 ? " task" : " tasks");
  const char* separator = ": ";
  auto add = [&](const std::string& state) {
    auto it = counts.find(state);
    if (it == counts.end()) return;
    text += separator + std::to_string(it->second) + " " + state;
    separator = ", ";
    counts.erase(it);
  };
  for (const char* state :
       {"cached", "succeeded", "failed", "upstream_failed", "skipped", "cancelled"}) {
    add(state);
  }
  while (!counts.empty()) add(counts.begin()->first);
  return text;
}

std::string ExplainTask(const json& task, const json& definition) {
  std::string id = task.value("task_id", "");
  std::string state = task.value("state", "");
  const json cache = task.contains("cache") && task["cache"].is_object() ? task["cache"] : json();
  if (state == "cached" || (cache.is_object() && cache.value("hit", false))) return id + ": cached";
  if (task.value("attempts", 0) == 0) return id + ": not run (" + state + ")";
  if (cache.is_object()) {
    std::string reason = cache.value("reason", "");
    return id + ": ran: " + (reason.empty() ? "no entry for this key" : reason);
  }
  if (!definition.is_object()) return id + ": not cached";
  const json off = definition.value("cache", json());
  if (off == false || off == "off") return id + ": not cached: cache: off";
  const json sources = definition.value("sources", json::array());
  if (off.is_null() && (!sources.is_array() || sources.empty())) {
    return id + ": not cached: no sources declared";
  }
  return id + ": not cached: chaind said nothing of its cache";
}

void ExplainRun(const DaemonOptions& daemon, const std::string& run_id, std::ostream& err) {
  HttpClientResponse response;
  std::string why;
  json run;
  if (CallDaemon(daemon, {"GET", "/runs/" + run_id, "", ""}, &response, &why) &&
      response.status == 200) {
    run = json::parse(response.body, nullptr, false);
  }
  if (!run.is_object() || !run.contains("tasks") || !run["tasks"].is_array()) {
    err << "chainctl: --explain: cannot read " << run_id << ": "
        << (why.empty() ? ApiErrorMessage(response) : why) << "\n";
    return;
  }
  std::map<std::string, json> definitions;  // task_id -> its entry in the definition
  std::string target = "/chains/" + run.value("chain_id", "") +
                       "?version=" + std::to_string(run.value("chain_version", 0));
  if (CallDaemon(daemon, {"GET", target, "", ""}, &response, &why) && response.status == 200) {
    json chain = json::parse(response.body, nullptr, false);
    json tasks = chain.is_object()
                     ? chain.value("definition", json::object()).value("tasks", json::array())
                     : json::array();
    for (const json& task : tasks) {
      if (task.is_object()) definitions[task.value("task_id", "")] = task;
    }
  }
  for (const json& task : run["tasks"]) {
    auto definition = definitions.find(task.value("task_id", ""));
    err << ExplainTask(task, definition == definitions.end() ? json() : definition->second) << "\n";
  }
}

bool FollowRun(const DaemonOptions& daemon, const std::string& run_id, Progress* progress,
               json* last, std::string* err) {
  std::string pending;
  bool ended = false;
  auto on_body = [&](std::string_view data) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      json event = json::parse(pending.begin() + static_cast<std::ptrdiff_t>(start),
                               pending.begin() + static_cast<std::ptrdiff_t>(nl), nullptr, false);
      if (event.is_discarded()) continue;
      progress->OnEvent(event);
      if (event.value("type", "") == "run_finished") {
        *last = event;
        ended = true;
      }
    }
    pending.erase(0, start);
  };
  HttpClientRequest request{"GET", "/runs/" + run_id + "/events?follow=1", "", ""};
  HttpClientResponse response;
  HttpCallError error;
  // A run may take days; the stream itself says when it ends.
  constexpr std::chrono::hours kNoDeadline(24 * 365);
  if (!HttpCall(daemon.socket, request, kNoDeadline, &response, &error, err, on_body)) {
    progress->Clear();
    return false;
  }
  if (response.status != 200) {
    response.body = pending;  // an error answer went to on_body too
    *err = ApiErrorMessage(response);
    return false;
  }
  if (!ended) *err = "the event stream of " + run_id + " ended before the run did";
  return ended;
}

}  // namespace chainctl::cli
