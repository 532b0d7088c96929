// Where chaind's socket and state live (DESIGN.md §6), for the CLI and the
// daemon alike.
#pragma once

#include <functional>
#include <string>

namespace chainctl {

// Reads an environment variable; nullptr if unset. Tests pass a fake.
using EnvLookup = std::function<const char*(const char*)>;
EnvLookup RealEnv();

// CHAINCTL_SOCKET, else $XDG_RUNTIME_DIR/chainctl/chaind.sock, else
// /tmp/chainctl-$UID/chaind.sock.
std::string DefaultSocketPath(const EnvLookup& env, unsigned uid);

// CHAINCTL_STATE_DIR, else $XDG_STATE_HOME/chainctl, else
// $HOME/.local/state/chainctl (else /tmp/chainctl-$UID/state).
std::string DefaultStateDir(const EnvLookup& env, unsigned uid);

// chaind's configuration file when no --config is given (man chaind, CONFIGURATION):
// CHAIND_CONFIG (which must then exist: *required), else $XDG_CONFIG_HOME/chainctl/chaind.conf,
// else $HOME/.config/chainctl/chaind.conf (read if it exists); "" when none can be named.
std::string DefaultConfigFile(const EnvLookup& env, bool* required = nullptr);

// Makes `dir` (and missing parents) with mode 0700. An existing `dir` must be
// a directory owned by the caller's uid and not writable by others (the
// /tmp fallback could be pre-made by another user). Sets *err otherwise.
bool EnsurePrivateDir(const std::string& dir, std::string* err);

// A Unix socket path must fit sockaddr_un::sun_path (107 bytes and a NUL).
bool CheckSocketPathLength(const std::string& path, std::string* err);

}  // namespace chainctl
