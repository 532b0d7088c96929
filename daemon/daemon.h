// chaind as a whole: one libuv loop serving the API on a Unix socket, the
// store in the state directory, orderly shutdown on SIGTERM/SIGINT.
#pragma once

#include <string>

#include "daemon/http_types.h"
#include "daemon/log.h"

namespace chainctl::daemon {

struct DaemonConfig {
  std::string socket_path;  // ignored under systemd socket activation
  std::string state_dir;
  HttpLimits limits;
};

// Runs until SIGTERM or SIGINT, then stops accepting, answers what is in
// flight, closes the store and returns 0. Returns 1, having logged why, if it
// cannot start: the state dir or socket is taken by another chaind, a path
// is unusable, or the store cannot be opened.
int RunDaemon(const DaemonConfig& config);

}  // namespace chainctl::daemon
