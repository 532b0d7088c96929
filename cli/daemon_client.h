// Talking to chaind: where it listens, starting it when none answers (like
// the Gradle daemon), and calling its API.
#pragma once

#include <sys/types.h>

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
// Under CI (CI=true: GitHub Actions, GitLab CI and most others set it) the chaind started exits
// once idle for kCiExitWhenIdle: it gets CHAIND_EXIT_WHEN_IDLE, unless that is set already or
// chaind's configuration file (ChaindConfigPath) has an exit-when-idle line; the log says so.
bool StartDaemon(const DaemonOptions& options, std::string* err);
inline constexpr const char* kCiExitWhenIdle = "5m";

// The configuration file a chaind started without --config reads (daemon/main.cc:
// DefaultConfigFile): $CHAIND_CONFIG, else $XDG_CONFIG_HOME/chainctl/chaind.conf, else
// ~/.config/chainctl/chaind.conf ("" if neither variable is set).
std::string ChaindConfigPath();

// A chaind of one chainctl command's own (chainctl run --no-daemon), made by StartPrivateDaemon:
// on a socket in a fresh 0700 temporary folder, with the usual state folder (history, the model
// and the store still go there), its log appended to STATE_DIR/chaind.log. It is started with
// --parent-pid (it stops, as on SIGTERM, if this process dies, SIGKILL included) and
// --exit-when-idle kPrivateExitWhenIdle (a safety net). The handle stops it when it goes, so
// every exit path of its owner does; Stop does it with a result.
class PrivateDaemon {
 public:
  PrivateDaemon() = default;  // none running
  ~PrivateDaemon();           // Stop, its error dropped
  PrivateDaemon(PrivateDaemon&& other) noexcept;
  PrivateDaemon& operator=(PrivateDaemon&& other) noexcept;

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Where it answers: the temporary socket and the state folder, autostart off (were it to die,
  // nothing may start a shared chaind on the temporary socket); the rest as the options given.
  const DaemonOptions& options() const { return options_; }

  // SIGTERM, then waits (a bounded poll) up to `grace` for it to exit, SIGKILL after that; reaps
  // it and removes the temporary folder. False with *err (may be null) if it had to be killed or
  // exited with another status than 0. Does nothing, returning true, when none is running.
  bool Stop(std::string* err, std::chrono::milliseconds grace = std::chrono::seconds(30));

 private:
  friend bool StartPrivateDaemon(const DaemonOptions& base, PrivateDaemon* daemon,
                                 std::string* err);
  pid_t pid_ = 0;    // 0: none (never started, or reaped)
  std::string dir_;  // the temporary folder; "" once removed
  DaemonOptions options_;
};
inline constexpr const char* kPrivateExitWhenIdle = "30s";

// Starts a PrivateDaemon for `base` (its state_dir, or the default one, and its timeouts; its
// socket is not used) into *daemon, and waits until it answers (base.start_timeout). False with
// *err, nothing left running or on disk, if it cannot; if another chaind holds the state folder,
// *err says so and suggests dropping --no-daemon.
bool StartPrivateDaemon(const DaemonOptions& base, PrivateDaemon* daemon, std::string* err);

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
