// Following a run: its NDJSON events (GET /runs/{id}/events?follow=1) read as they come and
// shown as progress on stderr, like ninja: on a terminal one status line rewritten in place
// ("[3/7] extract, transform") with finished tasks printed above it; otherwise one plain line
// per event. A task restored from the task cache (DESIGN.md §4 "Cache") ends "cached" and counts
// as done: "[3/7] cached build"; the run's last line counts the tasks by how they ended.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <string>

#include "cli/daemon_client.h"

namespace chainctl::cli {

enum class ProgressMode { kTty, kPlain, kQuiet };

// Whether `fd` is a terminal that takes escape sequences: a TTY, and TERM is not "dumb".
bool EscapesWork(int fd);

// "auto" (a terminal on stderr: tty, else plain), "tty", "plain", "quiet"; nullopt otherwise.
std::optional<ProgressMode> ParseProgressMode(const std::string& name, bool stderr_is_tty);

class Progress {
 public:
  Progress(std::ostream& err, ProgressMode mode, bool color)
      : err_(err), mode_(mode), color_(color) {}
  // Shows one event of the run.
  void OnEvent(const nlohmann::json& event);
  // Clears the status line (before printing anything else on a terminal).
  void Clear();

 private:
  void Status();
  std::string Paint(const std::string& text, const char* sgr) const;

  std::ostream& err_;
  ProgressMode mode_;
  bool color_;
  size_t total_ = 0;
  size_t finished_ = 0;
  std::set<std::string> running_;
  std::map<std::string, std::string> ended_;  // task_id -> the state it ended in (last one)
  bool status_shown_ = false;
};

// "7 tasks: 5 cached, 2 succeeded": how many tasks ended in each state (`ended`: task_id ->
// state), cached first, then succeeded, failed, upstream_failed, skipped, cancelled, the others.
std::string CountStates(const std::map<std::string, std::string>& ended);

// --explain: why a task of an ended run ran or not, in one line: "TASK: cached", "TASK: ran:
// REASON" (the cache's, e.g. "src/a.py changed"), "TASK: not cached: WHY" (no sources declared,
// cache: off) or "TASK: not run (STATE)". `task` is one of GET /runs/{id}'s tasks (task_id,
// state, attempts, cache?: {hit, key, reason}); `definition` its entry in the chain's definition
// (sources?, cache?), or null if not known.
std::string ExplainTask(const nlohmann::json& task, const nlohmann::json& definition);

// --explain once run `run_id` has ended: ExplainTask's line on `err` for each of its tasks, with
// their definitions from the run's chain version (GET /runs/{id}, GET /chains/{id}?version=).
void ExplainRun(const DaemonOptions& daemon, const std::string& run_id, std::ostream& err);

// Follows run `run_id` to its end, giving every event to `progress`. Returns true with the
// run_finished event in *last; false with *err if the stream broke first.
bool FollowRun(const DaemonOptions& daemon, const std::string& run_id, Progress* progress,
               nlohmann::json* last, std::string* err);

}  // namespace chainctl::cli
