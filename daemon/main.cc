// chaind: the chainctl daemon (DESIGN.md §1, §6). Flags here; the rest in
// daemon/daemon.cc.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <set>
#include <tuple>

#include "common/paths.h"
#include "common/units.h"
#include "daemon/daemon.h"
#include "daemon/version_info.h"

namespace {

// --cpus, --memory and --gpus into `config` ("" = the default); "" or what is wrong.
std::string ParseCapacity(const std::string& cpus, const std::string& memory,
                          const std::string& gpus, chainctl::daemon::DaemonConfig* config) {
  std::string err;
  if (!cpus.empty()) {
    std::optional<int64_t> millis = chainctl::ParseCpu(cpus, &err);
    if (!millis) return "--cpus: " + err;
    config->cpu_millis = *millis;
  }
  if (!memory.empty()) {
    std::optional<uint64_t> bytes = chainctl::ParseSize(memory, &err);
    if (!bytes) return "--memory: " + err;
    if (*bytes == 0) return "--memory: must be above 0";
    config->memory_bytes = *bytes;
  }
  std::set<std::string> seen;
  for (size_t start = 0; !gpus.empty() && start <= gpus.size();) {
    size_t end = std::min(gpus.find(',', start), gpus.size());
    std::string id = gpus.substr(start, end - start);
    if (id.empty() || id.find_first_of(" \t=") != std::string::npos || !seen.insert(id).second) {
      return "--gpus: expected distinct device ids separated by commas, e.g. 0,1; got \"" + gpus +
             "\"";
    }
    config->gpus.push_back(id);
    start = end + 1;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chainctl;
  daemon::DaemonConfig config;
  std::string log_level = "info";
  std::string max_body = "16Mi";
  std::string idle_timeout = "60s";
  std::string request_timeout = "30s";
  CLI::App app{"chaind: the chainctl daemon. It serves the API of DESIGN.md §6 on a Unix socket.",
               "chaind"};
  app.set_version_flag("--version", daemon::VersionLine());
  app.add_option("--socket", config.socket_path,
                 "Socket to listen on (default: $CHAINCTL_SOCKET, "
                 "$XDG_RUNTIME_DIR/chainctl/chaind.sock, /tmp/chainctl-$UID/chaind.sock)");
  app.add_option("--state-dir", config.state_dir,
                 "State folder (default: $CHAINCTL_STATE_DIR, $XDG_STATE_HOME/chainctl, "
                 "~/.local/state/chainctl)");
  app.add_option("--log-file", config.log_file,
                 "Log to this file (appended to; opened anew on SIGHUP, for logrotate) instead "
                 "of stderr");
  app.add_option("--log-level", log_level, "debug, info, warning or error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}))
      ->capture_default_str();
  app.add_option("--max-body", max_body, "Largest request body (413 above it)")
      ->capture_default_str();
  app.add_option("--idle-timeout", idle_timeout, "Close a connection idle this long")
      ->capture_default_str();
  app.add_option("--request-timeout", request_timeout,
                 "A request must arrive within this of its first byte (408 after)")
      ->capture_default_str();
  app.add_option("--jobs,-j", config.jobs, "Tasks running at once, across runs (default: cores)")
      ->check(CLI::PositiveNumber);
  std::string kill_grace = "5s";
  app.add_option("--kill-grace", kill_grace,
                 "After SIGTERM to a task that timed out or was cancelled, SIGKILL this much later")
      ->capture_default_str();
  app.add_option("--history-retention", config.history_retention,
                 "History records kept (the oldest are dropped)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option(
         "--keep-run-files", config.keep_run_files,
         "Keep the folders (logs, workdirs) of this many ended runs; older ones are removed")
      ->capture_default_str();
  app.add_option("--keep-runs", config.keep_runs,
                 "Keep the records (tasks, outputs, events) of this many ended runs in the "
                 "store; older ones are deleted (their history stays)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  std::string keep_runs_for;
  app.add_option("--keep-runs-for", keep_runs_for,
                 "And delete the records and folder of a run this long after it ended, e.g. "
                 "30d (default: kept whatever their age, within --keep-runs)");
  bool no_task_cgroups = false;
  app.add_flag("--no-task-cgroups", no_task_cgroups,
               "Run tasks without a cgroup each even where chaind can make them (their escaped "
               "descendants are then found by CHAIN_WORKDIR)");
  app.add_flag("--resume-interrupted", config.resume_interrupted,
               "Resume at start the runs that a crashed or killed chaind left running");
  std::string cpus, memory, gpus;
  app.add_option("--cpus", cpus,
                 "Cores that tasks' cpu requests are admitted against, e.g. 4 or 2.5 "
                 "(default: the machine's)");
  app.add_option("--memory", memory,
                 "Memory that tasks' memory requests are admitted against, e.g. 8Gi "
                 "(default: the machine's, MemTotal)");
  app.add_option("--gpus", gpus,
                 "GPU device ids handed out to tasks that request GPUs, comma separated, e.g. "
                 "0,1 (default: none)");
  std::string train_interval = "10m";
  app.add_option("--train-every", config.train_every,
                 "Train the predictor after this many new history records (or a tenth of the "
                 "history, if more)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--train-interval", train_interval,
                 "Train the predictor at the latest this long after a new history record")
      ->capture_default_str();
  app.add_option("--model-half-life", config.model_half_life,
                 "Half-life of the predictor's counts, in a chain's task starts (0: no decay; "
                 "default 1000)")
      ->check(CLI::NonNegativeNumber);
  bool no_prefetch = false;
  std::string max_log = "64Mi";
  app.add_option("--max-log", max_log,
                 "A task's stderr log kept within this on disk: its first and last halves; "
                 "0: no bound")
      ->capture_default_str();
  std::string prefetch_memory, prefetch_staged = "1Gi", prefetch_ttl = "10m";
  app.add_flag("--no-prefetch", no_prefetch,
               "Prewarm and stage nothing ahead (for comparison); inputs are staged at start");
  app.add_option("--prefetch-processes", config.prefetch_max_warm,
                 "Prewarmed processes and workers alive at once, within --prefetch-memory "
                 "(default: 32)");
  app.add_option("--prefetch-memory", prefetch_memory,
                 "Memory that prewarmed processes may hold, e.g. 2Gi (default: 25% of RAM)");
  app.add_option("--prefetch-staged", prefetch_staged, "Bytes of inputs staged ahead")
      ->capture_default_str();
  app.add_option("--prefetch-ttl", prefetch_ttl,
                 "The longest a prewarm is kept unused (keep-alives come from history, up to this)")
      ->capture_default_str();
  app.add_option("--max-idle-workers", config.max_idle_workers,
                 "Idle mode: worker processes kept for reuse (default: 4 per core)");
  app.add_option("--max-connections", config.limits.max_connections,
                 "Connections served at once (503 above)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << app.version() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "chaind: " << e.what() << "\nRun 'chaind --help' for usage.\n";
    return 2;
  }

  daemon::LogLevel level;
  daemon::ParseLogLevel(log_level, &level);
  daemon::SetLogLevel(level);
  std::string err;
  std::optional<uint64_t> body_limit = ParseSize(max_body, &err);
  if (!body_limit || *body_limit == 0) {
    std::cerr << "chaind: --max-body: " << (err.empty() ? "must be above 0" : err) << "\n";
    return 2;
  }
  config.limits.max_body_bytes = *body_limit;
  for (auto [flag, text, out] :
       {std::tuple{"--idle-timeout", &idle_timeout, &config.limits.idle_timeout_ms},
        std::tuple{"--request-timeout", &request_timeout, &config.limits.request_timeout_ms}}) {
    std::optional<Duration> d = ParseDuration(*text, &err);
    if (!d || d->count() == 0) {
      std::cerr << "chaind: " << flag << ": " << (d ? "must be longer than 0" : err) << "\n";
      return 2;
    }
    *out = static_cast<uint64_t>(d->count());
  }
  std::optional<Duration> grace = ParseDuration(kill_grace, &err);
  if (!grace) {
    std::cerr << "chaind: --kill-grace: " << err << "\n";
    return 2;
  }
  config.kill_grace_ms = static_cast<uint64_t>(grace->count());
  if (!keep_runs_for.empty()) {
    std::optional<Duration> age = ParseDuration(keep_runs_for, &err);
    if (!age || age->count() == 0) {
      std::cerr << "chaind: --keep-runs-for: " << (age ? "must be longer than 0" : err) << "\n";
      return 2;
    }
    config.keep_runs_for_ms = static_cast<uint64_t>(age->count());
  }
  std::optional<Duration> interval = ParseDuration(train_interval, &err);
  if (!interval || interval->count() == 0) {
    std::cerr << "chaind: --train-interval: " << (interval ? "must be longer than 0" : err) << "\n";
    return 2;
  }
  config.train_interval_ms = static_cast<uint64_t>(interval->count());
  config.prefetch = !no_prefetch;
  config.task_cgroups = !no_task_cgroups;
  for (auto [flag, text, out] :
       {std::tuple{"--prefetch-memory", &prefetch_memory, &config.prefetch_memory},
        std::tuple{"--prefetch-staged", &prefetch_staged, &config.prefetch_staged},
        std::tuple{"--max-log", &max_log, &config.max_log_bytes}}) {
    if (text->empty()) continue;
    std::optional<uint64_t> size = ParseSize(*text, &err);
    if (!size) {
      std::cerr << "chaind: " << flag << ": " << err << "\n";
      return 2;
    }
    *out = *size;
  }
  std::optional<Duration> ttl = ParseDuration(prefetch_ttl, &err);
  if (!ttl || ttl->count() == 0) {
    std::cerr << "chaind: --prefetch-ttl: " << (ttl ? "must be longer than 0" : err) << "\n";
    return 2;
  }
  config.prefetch_ttl_ms = static_cast<uint64_t>(ttl->count());
  if (std::string wrong = ParseCapacity(cpus, memory, gpus, &config); !wrong.empty()) {
    std::cerr << "chaind: " << wrong << "\n";
    return 2;
  }
  EnvLookup env = RealEnv();
  if (config.socket_path.empty()) config.socket_path = DefaultSocketPath(env, getuid());
  if (config.state_dir.empty()) config.state_dir = DefaultStateDir(env, getuid());
  return daemon::RunDaemon(config);
}
