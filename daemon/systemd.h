// systemd socket activation and readiness notification, without libsystemd
// (sd_listen_fds(3), sd_notify(3): the protocols are small and stable).
#pragma once

#include <string>

namespace chainctl::daemon {

// The listening socket passed by systemd (LISTEN_PID is us, LISTEN_FDS >= 1):
// fd 3, made close-on-exec; -1 if none. Unsets the variables so that child
// processes do not see them.
int SystemdListenFd();

// Sends `state` ("READY=1", "STOPPING=1") to $NOTIFY_SOCKET if it is set;
// does nothing otherwise. Returns false only if sending failed.
bool SystemdNotify(const std::string& state);

}  // namespace chainctl::daemon
