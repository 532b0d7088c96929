// Following a run: its NDJSON events (GET /runs/{id}/events?follow=1) read as they come and
// shown as progress on stderr, like ninja: on a terminal one status line rewritten in place
// ("[3/7] extract, transform") with finished tasks printed above it; otherwise one plain line
// per event.
#pragma once

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
  bool status_shown_ = false;
};

// Follows run `run_id` to its end, giving every event to `progress`. Returns true with the
// run_finished event in *last; false with *err if the stream broke first.
bool FollowRun(const DaemonOptions& daemon, const std::string& run_id, Progress* progress,
               nlohmann::json* last, std::string* err);

}  // namespace chainctl::cli
