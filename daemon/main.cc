// chaind: the chainctl daemon (DESIGN.md §1, §6). Its flags are the table kFlags below; the rest
// is in daemon/daemon.cc.
//
// Every flag may also come from the environment, CHAIND_ and its name (CHAIND_JOBS for --jobs),
// and from the configuration file (daemon/config_file.h): the command line wins over the
// environment, which wins over the file, which wins over the default.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/paths.h"
#include "common/units.h"
#include "daemon/config_file.h"
#include "daemon/daemon.h"
#include "daemon/version_info.h"

namespace {

using chainctl::daemon::DaemonConfig;
using chainctl::daemon::HttpLimits;
using chainctl::daemon::config::ConfigSource;
using chainctl::daemon::config::Describe;
using chainctl::daemon::config::EnvName;
using chainctl::daemon::config::FirstName;

// What CLI11 parses a flag into when not straight into a DaemonConfig field.
struct FlagValue {
  std::string text;    // an option's text: its default text until given
  bool given = false;  // whether a flag without value was given
};

struct Flag;

// Where a flag's value goes. `add` puts the flag on `app`, parsed into a field of `config` as it
// is or into `value`; `apply`, where set, turns `value` into fields of `config` once every flag
// is parsed, and returns "" or what is wrong with it.
struct Target {
  std::string default_text = "";
  std::function<CLI::Option*(CLI::App* app, const Flag& flag, DaemonConfig* config,
                             FlagValue* value)>
      add = nullptr;
  std::function<std::string(const FlagValue& value, DaemonConfig* config)> apply = nullptr;
};

enum ShowDefault : bool { kHideDefault = false, kShowDefault = true };

// One of chaind's flags, as `chaind --help` lists it.
struct Flag {
  // As CLI11 takes them ("--jobs,-j"). A flag with an `apply` has one: its errors start with it.
  const char* names;
  Target target;
  const char* help;
  ShowDefault show_default = kHideDefault;             // kShowDefault: --help shows it ("=16Mi")
  std::optional<CLI::Validator> check = std::nullopt;  // CLI11's, while parsing
};

// A field of DaemonConfig, or of its HttpLimits, named by its member pointer (implicitly, so
// that a row names just the field).
template <typename T>
class ConfigField {
 public:
  ConfigField(T DaemonConfig::*field) : field_(field) {}
  ConfigField(T HttpLimits::*limit) : limit_(limit) {}
  T& In(DaemonConfig* config) const { return field_ ? config->*field_ : config->limits.*limit_; }

 private:
  T DaemonConfig::*field_ = nullptr;
  T HttpLimits::*limit_ = nullptr;
};

// CLI11 parses the value straight into `field`; a bool is a flag without value.
template <typename T>
Target IntoField(ConfigField<T> field) {
  return {.add = [field](CLI::App* app, const Flag& flag, DaemonConfig* config, FlagValue*) {
    if constexpr (std::is_same_v<T, bool>) {
      return app->add_flag(flag.names, field.In(config), flag.help);
    } else {
      return app->add_option(flag.names, field.In(config), flag.help);
    }
  }};
}
template <typename T>
Target Into(T DaemonConfig::*field) {
  return IntoField(ConfigField<T>(field));
}
template <typename T>
Target Into(T HttpLimits::*limit) {
  return IntoField(ConfigField<T>(limit));
}

// A flag without value that turns `field` off, as --no-prefetch does.
Target TurnsOff(bool DaemonConfig::*field) {
  return {
      .add = [](CLI::App* app, const Flag& flag, DaemonConfig*,
                FlagValue* value) { return app->add_flag(flag.names, value->given, flag.help); },
      .apply =
          [field](const FlagValue& value, DaemonConfig* config) {
            config->*field = !value.given;
            return std::string();
          }};
}

// An option read as text, `default_text` until given, that `apply` turns into config fields:
// "" or what is wrong.
using ApplyText = std::function<std::string(const std::string& text, DaemonConfig* config)>;
Target Text(std::string default_text, ApplyText apply) {
  return {
      .default_text = std::move(default_text),
      .add = [](CLI::App* app, const Flag& flag, DaemonConfig*,
                FlagValue* value) { return app->add_option(flag.names, value->text, flag.help); },
      .apply = [apply = std::move(apply)](
                   const FlagValue& value,
                   DaemonConfig* config) { return apply(value.text, config); }};
}

// As Text, for a list separated by commas: several values (the configuration file's `key = 0,1`
// or `key = [0, 1]`, the flag given twice) are joined into one text with commas.
Target ListText(ApplyText apply) {
  Target target = Text("", std::move(apply));
  target.add = [add = target.add](CLI::App* app, const Flag& flag, DaemonConfig* config,
                                  FlagValue* value) {
    return add(app, flag, config, value)->join(',');
  };
  return target;
}

// What a size's, a duration's or a cpu's text may be beyond its syntax (common/units.h).
struct Bounds {
  bool above_zero = false;           // 0 is refused
  bool empty_keeps_default = false;  // "" leaves the field as it is (else: the syntax's error)
};

// Text in a unit of common/units.h into `field`: `parse` (as ParseSize) gives the value or says
// what is wrong; `zero_refused` says why 0 is, where `bounds` refuse it.
template <typename T, typename Parse>
Target UnitText(ConfigField<T> field, std::string default_text, Bounds bounds, Parse parse,
                const char* zero_refused) {
  return Text(std::move(default_text), [=](const std::string& text, DaemonConfig* config) {
    if (text.empty() && bounds.empty_keeps_default) return std::string();
    std::string err;
    std::optional<T> value = parse(text, &err);
    if (!value) return err;
    if (*value == 0 && bounds.above_zero) return std::string(zero_refused);
    field.In(config) = *value;
    return std::string();
  });
}

// A size, e.g. 64Mi, in bytes.
Target SizeText(ConfigField<uint64_t> field, std::string default_text, Bounds bounds = {}) {
  return UnitText(field, std::move(default_text), bounds, chainctl::ParseSize, "must be above 0");
}

// A duration, e.g. 30s, in milliseconds.
Target DurationText(ConfigField<uint64_t> field, std::string default_text, Bounds bounds = {}) {
  auto parse_ms = [](std::string_view text, std::string* err) -> std::optional<uint64_t> {
    std::optional<chainctl::Duration> duration = chainctl::ParseDuration(text, err);
    if (!duration) return std::nullopt;
    return static_cast<uint64_t>(duration->count());
  };
  return UnitText(field, std::move(default_text), bounds, parse_ms, "must be longer than 0");
}

// Cores, e.g. 2.5 or 1500m, in thousandths; "" keeps the default. (ParseCpu refuses 0 itself.)
Target CpuText(ConfigField<int64_t> field) {
  return UnitText(field, "", {.empty_keeps_default = true}, chainctl::ParseCpu, "");
}

// --log-level, a name CLI::IsMember let through: the level is set at once.
std::string ApplyLogLevel(const std::string& name, DaemonConfig*) {
  chainctl::daemon::LogLevel level;
  chainctl::daemon::ParseLogLevel(name, &level);
  chainctl::daemon::SetLogLevel(level);
  return "";
}

// --gpus: distinct device ids separated by commas ("": none).
std::string ApplyGpus(const std::string& gpus, DaemonConfig* config) {
  std::set<std::string> seen;
  for (size_t start = 0; !gpus.empty() && start <= gpus.size();) {
    size_t end = std::min(gpus.find(',', start), gpus.size());
    std::string id = gpus.substr(start, end - start);
    if (id.empty() || id.find_first_of(" \t=") != std::string::npos || !seen.insert(id).second) {
      return "expected distinct device ids separated by commas, e.g. 0,1; got \"" + gpus + "\"";
    }
    config->gpus.push_back(id);
    start = end + 1;
  }
  return "";
}

// chaind's flags, in the order --help lists them. The values of those with an `apply` are checked
// in this order too, after parsing: the first wrong one is reported.
const Flag kFlags[] = {
    {"--socket", Into(&DaemonConfig::socket_path),
     "Socket to listen on (default: $CHAINCTL_SOCKET, $XDG_RUNTIME_DIR/chainctl/chaind.sock, "
     "/tmp/chainctl-$UID/chaind.sock)"},
    {"--state-dir", Into(&DaemonConfig::state_dir),
     "State folder (default: $CHAINCTL_STATE_DIR, $XDG_STATE_HOME/chainctl, "
     "~/.local/state/chainctl)"},
    {"--log-file", Into(&DaemonConfig::log_file),
     "Log to this file (appended to; opened anew on SIGHUP, for logrotate) instead of stderr"},
    {"--log-level", Text("info", ApplyLogLevel), "debug, info, warning or error", kShowDefault,
     CLI::IsMember({"debug", "info", "warning", "error"})},
    {"--max-body", SizeText(&HttpLimits::max_body_bytes, "16Mi", {.above_zero = true}),
     "Largest request body (413 above it)", kShowDefault},
    {"--idle-timeout", DurationText(&HttpLimits::idle_timeout_ms, "60s", {.above_zero = true}),
     "Close a connection idle this long", kShowDefault},
    {"--request-timeout",
     DurationText(&HttpLimits::request_timeout_ms, "30s", {.above_zero = true}),
     "A request must arrive within this of its first byte (408 after)", kShowDefault},
    {"--jobs,-j", Into(&DaemonConfig::jobs), "Tasks running at once, across runs (default: cores)",
     kHideDefault, CLI::PositiveNumber},
    {"--kill-grace", DurationText(&DaemonConfig::kill_grace_ms, "5s"),
     "After SIGTERM to a task that timed out or was cancelled, SIGKILL this much later",
     kShowDefault},
    {"--history-retention", Into(&DaemonConfig::history_retention),
     "History records kept (the oldest are dropped)", kShowDefault, CLI::PositiveNumber},
    {"--keep-run-files", Into(&DaemonConfig::keep_run_files),
     "Keep the folders (logs, workdirs) of this many ended runs; older ones are removed",
     kShowDefault},
    {"--keep-runs", Into(&DaemonConfig::keep_runs),
     "Keep the records (tasks, outputs, events) of this many ended runs in the store; older ones "
     "are deleted (their history stays)",
     kShowDefault, CLI::PositiveNumber},
    {"--keep-runs-for",
     DurationText(&DaemonConfig::keep_runs_for_ms, "",
                  {.above_zero = true, .empty_keeps_default = true}),
     "And delete the records and folder of a run this long after it ended, e.g. 30d (default: "
     "kept whatever their age, within --keep-runs)"},
    {"--no-task-cgroups", TurnsOff(&DaemonConfig::task_cgroups),
     "Run tasks without a cgroup each even where chaind can make them (their escaped descendants "
     "are then found by CHAIN_WORKDIR)"},
    {"--resume-interrupted", Into(&DaemonConfig::resume_interrupted),
     "Resume at start the runs that a crashed or killed chaind left running"},
    {"--cpus", CpuText(&DaemonConfig::cpu_millis),
     "Cores that tasks' cpu requests are admitted against, e.g. 4 or 2.5 (default: the "
     "machine's)"},
    {"--memory",
     SizeText(&DaemonConfig::memory_bytes, "", {.above_zero = true, .empty_keeps_default = true}),
     "Memory that tasks' memory requests are admitted against, e.g. 8Gi (default: the machine's, "
     "MemTotal)"},
    {"--gpus", ListText(ApplyGpus),
     "GPU device ids handed out to tasks that request GPUs, comma separated, e.g. 0,1 (default: "
     "none)"},
    {"--train-every", Into(&DaemonConfig::train_every),
     "Train the predictor after this many new history records (or a tenth of the history, if "
     "more)",
     kShowDefault, CLI::PositiveNumber},
    {"--train-interval",
     DurationText(&DaemonConfig::train_interval_ms, "10m", {.above_zero = true}),
     "Train the predictor at the latest this long after a new history record", kShowDefault},
    {"--model-half-life", Into(&DaemonConfig::model_half_life),
     "Half-life of the predictor's counts, in a chain's task starts (0: no decay; default 1000)",
     kHideDefault, CLI::NonNegativeNumber},
    {"--max-log", SizeText(&DaemonConfig::max_log_bytes, "64Mi", {.empty_keeps_default = true}),
     "A task's stderr log kept within this on disk: its first and last halves; 0: no bound",
     kShowDefault},
    {"--no-prefetch", TurnsOff(&DaemonConfig::prefetch),
     "Prewarm and stage nothing ahead (for comparison); inputs are staged at start"},
    {"--prefetch-processes", Into(&DaemonConfig::prefetch_max_warm),
     "Prewarmed processes and workers alive at once, within --prefetch-memory (default: 32)"},
    {"--prefetch-memory",
     SizeText(&DaemonConfig::prefetch_memory, "", {.empty_keeps_default = true}),
     "Memory that prewarmed processes may hold, e.g. 2Gi (default: 25% of RAM)"},
    {"--prefetch-staged",
     SizeText(&DaemonConfig::prefetch_staged, "1Gi", {.empty_keeps_default = true}),
     "Bytes of inputs staged ahead", kShowDefault},
    {"--prefetch-ttl", DurationText(&DaemonConfig::prefetch_ttl_ms, "10m", {.above_zero = true}),
     "The longest a prewarm is kept unused (keep-alives come from history, up to this)",
     kShowDefault},
    {"--max-idle-workers", Into(&DaemonConfig::max_idle_workers),
     "Idle mode: worker processes kept for reuse (default: 4 per core)"},
    {"--cache-dir", Into(&DaemonConfig::cache_dir),
     "The task cache's folder; chainds and CI jobs may share it (default: $CHAINCTL_CACHE_DIR, "
     "STATE_DIR/task-cache)"},
    {"--cache-size", SizeText(&DaemonConfig::cache_max_bytes, "5Gi", {.above_zero = true}),
     "The task cache's budget: beyond it, the least recently used results are removed",
     kShowDefault},
    {"--max-connections", Into(&HttpLimits::max_connections),
     "Connections served at once (503 above)", kShowDefault, CLI::PositiveNumber},
    {"--exit-when-idle",
     DurationText(&DaemonConfig::exit_when_idle_ms, "", {.empty_keeps_default = true}),
     "Exit, as on SIGTERM, once no run has been active and no client connected for this long, "
     "e.g. 5m (default: never; 0s: never). chainctl starting chaind under CI=true sets "
     "CHAIND_EXIT_WHEN_IDLE=5m"},
    {"--parent-pid", Into(&DaemonConfig::parent_pid),
     "Exit, as on SIGTERM, when this process, chaind's parent, exits (chainctl run --no-daemon "
     "passes its own pid)",
     kHideDefault, CLI::PositiveNumber},
};

// Puts `flag` on `app`, its value going into `config` or `value`.
void AddFlag(CLI::App* app, const Flag& flag, DaemonConfig* config, FlagValue* value) {
  value->text = flag.target.default_text;
  CLI::Option* option = flag.target.add(app, flag, config, value);
  option->envname(EnvName(flag.names));
  if (flag.show_default) option->capture_default_str();
  if (flag.check) option->check(*flag.check);
}

// chaind's command line, environment and configuration file into `config`, the socket and state
// folder not given left "". nullopt: go on; else the exit status, having printed the help, the
// version or what is wrong.
std::optional<int> ParseCommandLine(int argc, char** argv, DaemonConfig* config) {
  CLI::App app{"chaind: the chainctl daemon. It serves the API of DESIGN.md §6 on a Unix socket.",
               "chaind"};
  app.set_version_flag("--version", chainctl::daemon::VersionLine());
  ConfigSource source;
  std::string fallback = chainctl::daemon::config::AddConfig(&app, &source);
  std::vector<FlagValue> values(std::size(kFlags));  // sized once: CLI11 keeps pointers into it
  for (size_t i = 0; i < values.size(); ++i) AddFlag(&app, kFlags[i], config, &values[i]);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << app.version() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    const CLI::Option* given = app.get_config_ptr();
    source.file = given->count() ? given->as<std::string>() : fallback;
    std::cerr << "chaind: " << Describe(e, source) << "\nRun 'chaind --help' for usage.\n";
    return 2;
  }
  source.file = app.get_config_ptr()->as<std::string>();
  for (size_t i = 0; i < values.size(); ++i) {
    const Flag& flag = kFlags[i];
    if (!flag.target.apply) continue;
    if (std::string wrong = flag.target.apply(values[i], config); !wrong.empty()) {
      std::cerr << "chaind: " << flag.names << ": " << wrong << source.Where(FirstName(flag.names))
                << "\n";
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chainctl;
  daemon::DaemonConfig config;
  if (std::optional<int> exit_status = ParseCommandLine(argc, argv, &config)) return *exit_status;
  EnvLookup env = RealEnv();
  if (config.socket_path.empty()) config.socket_path = DefaultSocketPath(env, getuid());
  if (config.state_dir.empty()) config.state_dir = DefaultStateDir(env, getuid());
  if (config.cache_dir.empty()) {
    const char* dir = env("CHAINCTL_CACHE_DIR");
    config.cache_dir = dir && *dir ? std::string(dir) : config.state_dir + "/task-cache";
  }
  return daemon::RunDaemon(config);
}
