#include "cli/daemon_client.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/paths.h"

extern char** environ;

namespace chainctl::cli {
namespace {

namespace fs = std::filesystem;

std::string LogPath(const DaemonOptions& o) { return o.state_dir + "/chaind.log"; }

// The last `lines` lines of a file, for error messages.
std::string Tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::string line, all;
  std::vector<std::string> last;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.erase(last.begin());
  }
  for (const std::string& l : last) all += "  " + l + "\n";
  return all;
}

// posix_spawn's file actions: stdin /dev/null, stdout and stderr to the log (for what chaind
// says before it opens its --log-file, which it reopens on SIGHUP).
bool SpawnDetached(const DaemonOptions& o, pid_t* pid, std::string* err) {
  std::string chaind = FindChaind();
  std::vector<std::string> args = {chaind,      "--socket",   o.socket,  "--state-dir",
                                   o.state_dir, "--log-file", LogPath(o)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, LogPath(o).c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // survives the terminal and Ctrl-C
  int rc = posix_spawnp(pid, chaind.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *err = "cannot start " + chaind + ": " + std::strerror(rc);
    return false;
  }
  return true;
}

}  // namespace

DaemonOptions ResolveDaemonOptions(DaemonOptions options) {
  EnvLookup env = RealEnv();
  if (options.socket.empty()) options.socket = DefaultSocketPath(env, getuid());
  if (options.state_dir.empty()) options.state_dir = DefaultStateDir(env, getuid());
  const char* no_autostart = env("CHAINCTL_NO_AUTOSTART");
  if (no_autostart && std::string(no_autostart) == "1") options.autostart = false;
  return options;
}

std::string FindChaind() {
  if (const char* env = std::getenv("CHAIND"); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path candidate :
         {self.parent_path() / "chaind", self.parent_path().parent_path() / "daemon" / "chaind"}) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return "chaind";
}

bool StartDaemon(const DaemonOptions& o, std::string* err) {
  if (!EnsurePrivateDir(o.state_dir, err)) return false;
  pid_t pid;
  if (!SpawnDetached(o, &pid, err)) return false;
  // Bounded poll with backoff: 5 ms, 10 ms, ... up to 200 ms between tries.
  auto deadline = std::chrono::steady_clock::now() + o.start_timeout;
  auto pause = std::chrono::milliseconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    nlohmann::json health;
    if (DaemonHealth(o, &health)) return true;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      *err = "chaind exited at start (" +
             (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                : "signal " + std::to_string(WTERMSIG(status))) +
             "); the end of " + LogPath(o) + ":\n" + Tail(LogPath(o), 10);
      return false;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
  *err = "chaind did not answer on " + o.socket + " within " +
         std::to_string(o.start_timeout.count()) + " ms; the end of " + LogPath(o) + ":\n" +
         Tail(LogPath(o), 10);
  return false;
}

bool CallDaemon(const DaemonOptions& o, const HttpClientRequest& request,
                HttpClientResponse* response, std::string* err) {
  HttpCallError error;
  if (HttpCall(o.socket, request, o.timeout, response, &error, err)) return true;
  if (error != HttpCallError::kNoDaemon) return false;
  if (!o.autostart) {
    *err += " (is chaind running? start it with `chainctl daemon start`; autostart is off)";
    return false;
  }
  if (!StartDaemon(o, err)) return false;
  return HttpCall(o.socket, request, o.timeout, response, &error, err);
}

bool DaemonHealth(const DaemonOptions& o, nlohmann::json* health) {
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  if (!HttpCall(o.socket, {"GET", "/health", "", ""}, std::chrono::milliseconds(2000), &response,
                &error, &err) ||
      response.status != 200) {
    return false;
  }
  *health = nlohmann::json::parse(response.body, nullptr, false);
  return true;
}

std::string ApiErrorMessage(const HttpClientResponse& response) {
  nlohmann::json body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    return body["error"].value("message", response.body);
  }
  return "HTTP " + std::to_string(response.status) + ": " + response.body;
}

}  // namespace chainctl::cli
