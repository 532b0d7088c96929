#include "cli/daemon_client.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

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

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

// Appends "TIME info chainctl: MESSAGE" to chaind's log, as chaind writes its lines.
void AppendToLog(const DaemonOptions& o, const std::string& message) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::ofstream(LogPath(o), std::ios::app) << stamp << " info chainctl: " << message << "\n";
}

// Whether chaind's configuration file has a `key = ...` line (as chaind reads it: the key
// trimmed, quotes around it allowed).
bool ConfigHasKey(const std::string& key) {
  std::string path = ChaindConfigPath();
  std::ifstream in(path);
  for (std::string line; !path.empty() && std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string name = line.substr(0, eq);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (name.size() >= 2 && (name[0] == '"' || name[0] == '\'') && name.back() == name[0]) {
      name = name.substr(1, name.size() - 2);
    }
    if (name == key) return true;
  }
  return false;
}

// Whether an entry ("NAME=value") of chainctl's environment goes to a chaind it starts, and so
// to every task that chaind runs, for any caller, for as long as it lives: what a login session
// sets (PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR, XDG_*), the ssh agent,
// proxies (*_proxy, *_PROXY: chaind downloads inputs.files), the sanitizers' *SAN_OPTIONS, and
// chaind's and chainctl's own settings (CHAIND_*, CHAINCTL_*). Nothing else: a variable (a secret)
// of the shell or CI step that happened to start chaind must not reach later runs; a run's tasks
// get the caller's variables explicitly, with the run (--env, --env-file, --pass-env; DESIGN.md
// §7).
bool InheritedByDaemon(std::string_view entry) {
  std::string_view name = entry.substr(0, entry.find('='));
  static constexpr std::string_view kNames[] = {"PATH",   "HOME",         "USER",     "LOGNAME",
                                                "SHELL",  "LANG",         "LANGUAGE", "TZ",
                                                "TMPDIR", "SSH_AUTH_SOCK"};
  static constexpr std::string_view kPrefixes[] = {"LC_", "XDG_", "CHAIND_", "CHAINCTL_"};
  for (std::string_view n : kNames) {
    if (name == n) return true;
  }
  for (std::string_view p : kPrefixes) {
    if (name.starts_with(p)) return true;
  }
  // The sanitizers' settings (scripts/test --sanitize) reach a sanitized chaind too.
  return name.ends_with("_proxy") || name.ends_with("_PROXY") || name.ends_with("SAN_OPTIONS");
}

// The part of chainctl's environment a chaind it starts gets (InheritedByDaemon).
std::vector<std::string> DaemonBaseEnv() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    if (InheritedByDaemon(*e)) env.emplace_back(*e);
  }
  return env;
}

// The environment of a chaind StartDaemon starts: DaemonBaseEnv, and under CI=true
// CHAIND_EXIT_WHEN_IDLE=kCiExitWhenIdle where neither it nor the configuration file sets the
// idle exit (logged to chaind's log).
std::vector<std::string> AutostartEnv(const DaemonOptions& o) {
  std::vector<std::string> env = DaemonBaseEnv();
  const char* ci = Env("CI");
  if (!ci || (std::strcmp(ci, "true") != 0 && std::strcmp(ci, "1") != 0)) return env;
  if (Env("CHAIND_EXIT_WHEN_IDLE") || ConfigHasKey("exit-when-idle")) return env;
  env.push_back(std::string("CHAIND_EXIT_WHEN_IDLE=") + kCiExitWhenIdle);
  AppendToLog(o, std::string("CI=") + ci +
                     ": starting chaind with CHAIND_EXIT_WHEN_IDLE=" + kCiExitWhenIdle +
                     " (it exits once idle that long; set CHAIND_EXIT_WHEN_IDLE"
                     " or exit-when-idle in " +
                     ChaindConfigPath() + " to change it, 0: never)");
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Starts chaind in a session of its own with --socket, --state-dir, --log-file and `extra`,
// environment `env`. posix_spawn's file actions: stdin /dev/null, stdout and stderr to the log
// (for what chaind says before it opens its --log-file, which it reopens on SIGHUP).
bool SpawnDetached(const DaemonOptions& o, std::vector<std::string> extra,
                   std::vector<std::string> env, pid_t* pid, std::string* err) {
  std::string chaind = FindChaind();
  std::vector<std::string> args = {chaind,      "--socket",   o.socket,  "--state-dir",
                                   o.state_dir, "--log-file", LogPath(o)};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp = Pointers(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, LogPath(o).c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A session of its own: it survives the terminal and Ctrl-C. No signal blocked, and SIGTERM and
  // SIGINT at their default until chaind handles them, whatever this process inherited: a chaind
  // that could not get SIGTERM would not stop (chainctl daemon stop, PrivateDaemon::Stop).
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  int rc = posix_spawnp(pid, chaind.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    *err = "cannot start " + chaind + ": " + std::strerror(rc);
    return false;
  }
  return true;
}

// Polls /health with backoff until the chaind started as `pid` answers on o.socket: true. Else
// false with *err (the end of its log), *exited saying whether it exited (and was reaped).
bool WaitAnswering(const DaemonOptions& o, pid_t pid, bool* exited, std::string* err) {
  *exited = false;
  // Bounded poll with backoff: 5 ms, 10 ms, ... up to 200 ms between tries.
  auto deadline = std::chrono::steady_clock::now() + o.start_timeout;
  auto pause = std::chrono::milliseconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    nlohmann::json health;
    if (DaemonHealth(o, &health)) return true;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      *exited = true;
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

}  // namespace

std::string ChaindConfigPath() { return DefaultConfigFile(RealEnv()); }

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
  if (!SpawnDetached(o, {}, AutostartEnv(o), &pid, err)) return false;
  bool exited;
  return WaitAnswering(o, pid, &exited, err);
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

namespace {

// A fresh 0700 folder for a private chaind's socket: under $TMPDIR if the socket path fits there,
// else under /tmp. "" with *err if none can be made.
std::string MakeSocketDir(std::string* err) {
  std::vector<std::string> bases = {"/tmp"};
  if (const char* tmp = Env("TMPDIR")) bases.insert(bases.begin(), tmp);
  for (const std::string& base : bases) {
    std::string dir = base + "/chainctl-run.XXXXXX";
    if (!CheckSocketPathLength(dir + "/chaind.sock", err)) continue;
    if (mkdtemp(dir.data())) return dir;  // mode 0700
    *err = "cannot make a folder for chaind's socket in " + base + ": " + std::strerror(errno);
  }
  return "";
}

// chaind's refusal when another holds the state folder (daemon/single_instance.cc), as a
// message for chainctl run --no-daemon; "" if the end of the log does not say so.
std::string AnotherChaind(const DaemonOptions& o) {
  std::string tail = Tail(LogPath(o), 20);
  size_t at = tail.rfind("another chaind (pid ");
  if (at == std::string::npos) return "";
  std::string refusal = tail.substr(at, tail.find('\n', at) - at);
  return refusal +
         ": --no-daemon needs a chaind of its own on the state folder; drop --no-daemon "
         "to run on that chaind, or stop it first (chainctl daemon stop)\n";
}

}  // namespace

PrivateDaemon::~PrivateDaemon() { Stop(nullptr); }

PrivateDaemon::PrivateDaemon(PrivateDaemon&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)),
      dir_(std::exchange(other.dir_, "")),
      options_(std::move(other.options_)) {}

PrivateDaemon& PrivateDaemon::operator=(PrivateDaemon&& other) noexcept {
  if (this != &other) {
    Stop(nullptr);
    pid_ = std::exchange(other.pid_, 0);
    dir_ = std::exchange(other.dir_, "");
    options_ = std::move(other.options_);
  }
  return *this;
}

bool PrivateDaemon::Stop(std::string* err, std::chrono::milliseconds grace) {
  std::string why;
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    pid_t reaped = 0;
    // Bounded poll with backoff: 1 ms, 2 ms, ... up to 50 ms between tries.
    auto deadline = std::chrono::steady_clock::now() + grace;
    for (auto pause = std::chrono::milliseconds(1);;
         pause = std::min(pause * 2, std::chrono::milliseconds(50))) {
      reaped = waitpid(pid_, &status, WNOHANG);
      if (reaped != 0 || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(pause);
    }
    if (reaped == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      why = "chaind (pid " + std::to_string(pid_) + ") did not stop within " +
            std::to_string(grace.count()) + " ms of SIGTERM: killed";
    } else if (reaped == pid_ && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      why = "chaind (pid " + std::to_string(pid_) + ") ended with " +
            (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                               : "signal " + std::to_string(WTERMSIG(status))) +
            "; see " + LogPath(options_);
    }
    pid_ = 0;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
  if (err && !why.empty()) *err = why;
  return why.empty();
}

bool StartPrivateDaemon(const DaemonOptions& base, PrivateDaemon* daemon, std::string* err) {
  daemon->Stop(nullptr);
  DaemonOptions o = ResolveDaemonOptions(base);
  o.autostart = false;
  if (!EnsurePrivateDir(o.state_dir, err)) return false;
  std::string dir = MakeSocketDir(err);
  if (dir.empty()) return false;
  o.socket = dir + "/chaind.sock";
  std::vector<std::string> env = DaemonBaseEnv();
  pid_t pid;
  if (!SpawnDetached(
          o, {"--parent-pid", std::to_string(getpid()), "--exit-when-idle", kPrivateExitWhenIdle},
          std::move(env), &pid, err)) {
    std::filesystem::remove_all(dir);
    return false;
  }
  daemon->pid_ = pid;
  daemon->dir_ = dir;
  daemon->options_ = o;
  bool exited;
  if (WaitAnswering(o, pid, &exited, err)) return true;
  if (exited) {
    daemon->pid_ = 0;  // reaped
    if (std::string another = AnotherChaind(o); !another.empty()) *err = another;
  }
  daemon->Stop(nullptr);
  return false;
}

}  // namespace chainctl::cli
