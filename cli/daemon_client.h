// Talking to chaind: where it listens, starting it when none answers (like
// the Gradle daemon), and calling its API.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/http_client.h"

namespace chainctl::cli {

struct DaemonOptions {
  std::string socket;     // empty: DefaultSocketPath()
  std::string state_dir;  // empty: DefaultStateDir()
  bool autostart = true;  // --no-autostart / CHAINCTL_NO_AUTOSTART=1 turn it off
  std::chrono::milliseconds timeout{30'000};        // one API call
  std::chrono::milliseconds start_timeout{10'000};  // a started daemon must answer by then
};

// Fills in the defaults of DESIGN.md §6 and the environment.
DaemonOptions ResolveDaemonOptions(DaemonOptions options);

// The chaind executable: $CHAIND, else next to this chainctl (installed), else
// ../daemon/chaind from it (build tree), else "chaind" from PATH.
std::string FindChaind();

// Starts chaind detached (its own session, stdin from /dev/null, output to
// STATE_DIR/chaind.log) and waits, polling /health with backoff, until it
// answers. Fails with the end of the log if it exits or stays silent.
bool StartDaemon(const DaemonOptions& options, std::string* err);

// Calls the API; if nothing listens on the socket and options.autostart,
// starts chaind first. *err says what went wrong when this returns false
// (no HTTP answer at all); an HTTP error status is an answer.
bool CallDaemon(const DaemonOptions& options, const HttpClientRequest& request,
                HttpClientResponse* response, std::string* err);

// GET /health without starting anything: true and *health set if chaind
// answers.
bool DaemonHealth(const DaemonOptions& options, nlohmann::json* health);

// The message of an API error body {"error": {"code", "message", "details"}},
// or the raw body.
std::string ApiErrorMessage(const HttpClientResponse& response);

}  // namespace chainctl::cli
