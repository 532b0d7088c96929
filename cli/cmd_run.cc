// chainctl trigger, run, cancel and resume: starting runs and following them (DESIGN.md §7).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/ci_report.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "cli/run_env.h"
#include "cli/watch.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// The trigger input from --input: JSON text, @FILE, or - for stdin; {} if not given.
bool ParseInput(const std::string& spec, json* input, std::string* err) {
  if (spec.empty()) {
    *input = json::object();
    return true;
  }
  std::string text, where = "--input";
  if (spec == "-") {
    std::stringstream buffer;
    buffer << std::cin.rdbuf();
    text = buffer.str();
    where = "stdin";
  } else if (spec[0] == '@') {
    std::ifstream file(spec.substr(1), std::ios::binary);
    if (!file) {
      *err = "--input: cannot read " + spec.substr(1);
      return false;
    }
    std::stringstream buffer;
    buffer << file.rdbuf();
    text = buffer.str();
    where = spec.substr(1);
  } else {
    text = spec;
  }
  try {
    *input = json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    *err = where + " is not JSON: " + what.substr(what.find(']') + 2);
    return false;
  }
  return true;
}

// ParseInput, printing why it failed. Returns kExitOk or kExitInvalid.
int ReadInput(const std::string& spec, json* input, std::ostream& err) {
  std::string why;
  if (ParseInput(spec, input, &why)) return kExitOk;
  err << "chainctl: " << why << "\n";
  return kExitInvalid;
}

// CallerEnv, printing why it failed. Returns kExitOk or kExitInvalid.
int ReadEnv(const RunOptions& options, json* env, std::ostream& err) {
  std::string why;
  if (CallerEnv(options, environ, env, &why)) return kExitOk;
  err << "chainctl: " << why << "\n";
  return kExitInvalid;
}

// Starts a run with `input`, the caller's `env`, the selected tasks and --no-cache of
// `options`; prints nothing on success.
int StartRun(const DaemonOptions& daemon, const std::string& chain_id, const json& input,
             const json& env, const RunOptions& options, std::string* run_id, std::ostream& err) {
  json body = {{"input", input}};
  if (!env.empty()) body["env"] = env;
  if (!options.tasks.empty()) body["tasks"] = options.tasks;
  if (options.no_cache) body["no_cache"] = true;
  HttpClientRequest request{"POST", "/chains/" + chain_id + "/trigger", "application/json",
                            body.dump()};
  HttpClientResponse response;
  if (int status = Call(daemon, request, &response, err); status != kExitOk) return status;
  *run_id = json::parse(response.body, nullptr, false).value("run_id", "");
  return kExitOk;
}

// The end of a failed task's log, indented, for the failure report.
void ShowLogTail(const DaemonOptions& daemon, const std::string& run_id, const std::string& task,
                 std::ostream& err) {
  HttpClientResponse response;
  std::string why;
  if (!CallDaemon(daemon, {"GET", "/runs/" + run_id + "/tasks/" + task + "/log?tail=20", "", ""},
                  &response, &why) ||
      response.status != 200 || response.body.empty()) {
    return;
  }
  err << "--- the end of " << task << "'s log (chainctl logs " << run_id << " " << task
      << ") ---\n";
  err << response.body;
  if (response.body.back() != '\n') err << "\n";
}

// The signal that interrupted the wait: SIGINT, SIGTERM or SIGHUP (0: none yet).
volatile sig_atomic_t g_signal = 0;

// While a command waits for a run, Ctrl-C, SIGTERM (a CI's cancel) and SIGHUP (a closed
// terminal) cancel the run (DESIGN.md §7): the handler only interrupts the call that waits;
// Wait then asks the daemon to cancel.
class CancelOnInterrupt {
 public:
  CancelOnInterrupt() {
    struct sigaction action {};
    action.sa_handler = [](int signal) {
      g_signal = signal;
      InterruptCalls();
    };
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the waiting poll() must return
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &action, &previous_[i]);
  }
  ~CancelOnInterrupt() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  }
  CancelOnInterrupt(const CancelOnInterrupt&) = delete;
  CancelOnInterrupt& operator=(const CancelOnInterrupt&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
};

// 130 after Ctrl-C, 143 after SIGTERM or SIGHUP (DESIGN.md §7), once the run is cancelled.
int CancelAfterInterrupt(const DaemonOptions& daemon, const std::string& run_id,
                         std::ostream& err) {
  ClearInterrupt();
  int status = g_signal == SIGINT || g_signal == 0 ? kExitInterrupted : kExitTerminated;
  const char* what = g_signal == SIGTERM  ? "terminated (SIGTERM)"
                     : g_signal == SIGHUP ? "hung up (SIGHUP)"
                                          : "interrupted";
  HttpClientResponse response;
  std::string why;
  if (CallDaemon(daemon, {"POST", "/runs/" + run_id + "/cancel", "", ""}, &response, &why) &&
      response.status / 100 == 2) {
    err << "\nchainctl: " << what << ": " << run_id << " cancelled\n";
  } else {
    err << "\nchainctl: " << what << "; cancelling " << run_id
        << " failed: " << (why.empty() ? ApiErrorMessage(response) : why) << "\n";
  }
  return status;
}

// Follows a run to its end; prints the output on success. Returns the exit status.
int Wait(const DaemonOptions& daemon, const std::string& run_id, const RunOptions& options,
         std::ostream& out, std::ostream& err) {
  CancelOnInterrupt cancel_on_interrupt;
  std::optional<ProgressMode> mode = ParseProgressMode(options.progress, EscapesWork(2));
  Progress progress(err, mode.value_or(ProgressMode::kPlain),
                    EscapesWork(2) && std::getenv("NO_COLOR") == nullptr);
  json last;
  std::string why;
  if (!FollowRun(daemon, run_id, &progress, &last, &why)) {
    if (CallsInterrupted()) return CancelAfterInterrupt(daemon, run_id, err);
    // The run exists: say so, lest a refused follow (503) read as a refused run.
    err << "chainctl: cannot follow " << run_id << " (it was started; see chainctl get run "
        << run_id << "): " << why << "\n";
    return kExitUnreachable;
  }
  // The run ended: --junit, --summary and the CI's groups and annotations. ReportRun says on
  // `err` what it could not do; the exit status stays the run's.
  ReportRun(daemon, run_id, {options.junit_file, options.summary_file, options.file}, err);
  if (options.explain) ExplainRun(daemon, run_id, err);
  if (last.value("status", "") == "succeeded") {
    out << last["output"].dump(2) << "\n";
    return kExitOk;
  }
  err << "chainctl: " << run_id << " " << last.value("status", "") << ": "
      << last.value("error", "") << "\n";
  HttpClientResponse response;
  if (CallDaemon(daemon, {"GET", "/runs/" + run_id, "", ""}, &response, &why) &&
      response.status == 200) {
    json run = json::parse(response.body, nullptr, false);
    if (run.is_object()) {
      for (const json& task : run["tasks"]) {
        // Under a CI, ReportRun has shown the log in the task's group already.
        if (task.value("state", "") == "failed" && DetectCi() == CiKind::kNone) {
          ShowLogTail(daemon, run_id, task.value("task_id", ""), err);
        }
      }
    }
  }
  return kExitChainFailed;
}

// After trigger or resume: prints the run's id, or waits for it as --wait/--follow say.
int WaitIfAsked(const DaemonOptions& daemon, const std::string& run_id, const RunOptions& options,
                std::ostream& out, std::ostream& err) {
  if (!options.wait && !options.follow && !options.explain) {
    out << run_id << "\n";
    return kExitOk;
  }
  RunOptions follow = options;
  if (!options.follow) follow.progress = "quiet";
  return Wait(daemon, run_id, follow, out, err);
}

// run -f: stores `chain` on `daemon`, starts a run of it and follows it to its end.
int ApplyAndRun(const DaemonOptions& daemon, const Chain& chain, const json& input, const json& env,
                const RunOptions& options, std::ostream& out, std::ostream& err) {
  json applied;
  if (int status = ApplyChain(daemon, chain, &applied, err); status != kExitOk) return status;
  std::string run_id;
  if (int status =
          StartRun(daemon, applied.value("chain_id", ""), input, env, options, &run_id, err);
      status != kExitOk) {
    return status;
  }
  return Wait(daemon, run_id, options, out, err);
}

// The chaind a --watch loop runs on, asked before each run: the shared one, or (--no-daemon) a
// private one, started again if its idle timeout stopped it while the loop waited.
using DaemonFor = std::function<bool(DaemonOptions* daemon, std::string* why)>;

// run -f FILE --watch: runs the chain, then again whenever a file its selected tasks' `sources`
// may match, or the chain file (reloaded) or its env_file, changes; until SIGINT, SIGTERM or
// SIGHUP (a run in flight cancelled as `run` does), which give 130 or 143.
class WatchLoop {
 public:
  WatchLoop(Chain chain, const json& input, const json& env, const RunOptions& options,
            DaemonFor daemon_for, std::string state_dir, std::ostream& out, std::ostream& err)
      : chain_(std::move(chain)),
        input_(input),
        env_(env),
        options_(options),
        daemon_for_(std::move(daemon_for)),
        state_dir_(std::move(state_dir)),
        out_(out),
        err_(err) {}

  int Run() {
    CancelOnInterrupt cancel_on_interrupt;  // for the waits between runs
    if (!Watch()) return kExitInvalid;
    RunOnce();
    err_ << "watch: watching " << watcher_.watched_folders() << " folder(s) for changes to "
         << options_.file << " and its tasks' sources (Ctrl-C to stop)\n";
    while (g_signal == 0) {
      std::chrono::steady_clock::time_point first;
      std::vector<std::string> changed = WaitForChanges(
          &watcher_, Debounce{}, std::chrono::milliseconds(-1), [] { return g_signal != 0; },
          &first);
      for (const std::string& warning : watcher_.TakeWarnings())
        err_ << "watch: " << warning << "\n";
      if (changed.empty() || g_signal != 0) continue;
      if (std::find(changed.begin(), changed.end(), chain_file_) != changed.end() && !Reload()) {
        continue;
      }
      err_ << "watch: " << changed.front();
      if (changed.size() > 1) err_ << " and " << changed.size() - 1 << " more";
      err_ << " changed, running " << (chain_.chain_id.empty() ? options_.file : chain_.chain_id)
           << "\n";
      RunOnce();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - first);
      if (g_signal == 0) err_ << "watch: result in " << ms.count() << " ms\n";
    }
    err_ << "watch: stopped\n";
    ClearInterrupt();
    return g_signal == SIGINT ? kExitInterrupted : kExitTerminated;
  }

 private:
  // (Re)starts the watcher on chain_'s selected tasks' sources; false, said why, if it cannot.
  bool Watch() {
    std::vector<int> order;
    std::string why;
    if (!SelectedTasks(chain_, options_.tasks, &order, &why)) {
      err_ << "chainctl: " << why << "\n";
      return false;
    }
    std::filesystem::path file = std::filesystem::absolute(options_.file).lexically_normal();
    WatchSpec spec;
    spec.base = file.parent_path().string();  // the chain's source_dir, as chainctl gave it
    chain_file_ = file.lexically_relative(spec.base).string();
    spec.files = {chain_file_};
    if (!chain_.env_file.empty()) spec.files.push_back(chain_.env_file);
    spec.ignore = {state_dir_};
    for (int i : order) {
      const TaskSpec& task = chain_.tasks[static_cast<size_t>(i)];
      spec.globs.insert(spec.globs.end(), task.sources.begin(), task.sources.end());
      // A hit restores outputs: were they sources too, each run would start the next.
      spec.ignore_globs.insert(spec.ignore_globs.end(), task.outputs.begin(), task.outputs.end());
    }
    if (watcher_.Start(spec, &why)) return true;
    err_ << "chainctl: --watch: " << why << "\n";
    return false;
  }

  // The chain file changed: loads and checks it again, and watches what it now says. False,
  // having printed its errors, while it does not validate (the last good chain stays).
  bool Reload() {
    std::optional<Chain> chain = LoadOrReport(options_.file, err_);
    std::vector<int> order;
    std::string why;
    if (chain && !SelectedTasks(*chain, options_.tasks, &order, &why)) {
      err_ << "chainctl: " << why << "\n";
      chain.reset();
    }
    if (!chain) {
      err_ << "watch: " << options_.file << " is not valid; waiting for the next change\n";
      return false;
    }
    Chain previous = std::move(chain_);
    chain_ = std::move(*chain);
    if (Watch()) return true;
    chain_ = std::move(previous);
    return Watch();
  }

  // One run, printed as `run` prints it; its status is not the loop's.
  void RunOnce() {
    DaemonOptions daemon;
    std::string why;
    if (!daemon_for_(&daemon, &why)) {
      err_ << "chainctl: --no-daemon: " << why;
      return;
    }
    ApplyAndRun(daemon, chain_, input_, env_, options_, out_, err_);
    out_.flush();
  }

  Chain chain_;
  const json& input_;
  const json& env_;
  const RunOptions& options_;
  DaemonFor daemon_for_;
  std::string state_dir_;
  std::ostream& out_;
  std::ostream& err_;
  Watcher watcher_;
  std::string chain_file_;  // relative to the watched folder
};

}  // namespace

int RunTrigger(const RunOptions& options, std::ostream& out, std::ostream& err) {
  json input, env;
  if (int status = ReadInput(options.input, &input, err); status != kExitOk) return status;
  if (int status = ReadEnv(options, &env, err); status != kExitOk) return status;
  DaemonOptions daemon = ResolveDaemonOptions(options.daemon);
  std::string run_id;
  if (int status = StartRun(daemon, options.chain, input, env, options, &run_id, err);
      status != kExitOk) {
    return status;
  }
  return WaitIfAsked(daemon, run_id, options, out, err);
}

int RunResume(const RunOptions& options, std::ostream& out, std::ostream& err) {
  json env;
  if (int status = ReadEnv(options, &env, err); status != kExitOk) return status;
  DaemonOptions daemon = ResolveDaemonOptions(options.daemon);
  HttpClientResponse response;
  std::string body = env.empty() ? "" : json{{"env", env}}.dump();
  if (int status = Call(daemon,
                        {"POST", "/runs/" + options.run_id + "/resume",
                         body.empty() ? "" : "application/json", body},
                        &response, err);
      status != kExitOk) {
    return status;
  }
  return WaitIfAsked(daemon, options.run_id, options, out, err);
}

int RunRun(const RunOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<Chain> chain = LoadOrReport(options.file, err);
  if (!chain) return kExitInvalid;
  json input, env;
  if (int status = ReadInput(options.input, &input, err); status != kExitOk) return status;
  if (int status = ReadEnv(options, &env, err); status != kExitOk) return status;
  std::vector<int> order;
  std::string why;
  if (!SelectedTasks(*chain, options.tasks, &order, &why)) {
    err << "chainctl: " << why << "\n";
    return kExitInvalid;
  }
  if (options.dry_run) {
    PrintDryRun(*chain, order, env, out);
    return kExitOk;
  }
  if (options.watch && options.file == "-") {
    err << "chainctl: --watch needs a chain file to watch, not standard input\n";
    return kExitInvalid;
  }
  if (!options.no_daemon) {
    DaemonOptions daemon = ResolveDaemonOptions(options.daemon);
    if (!options.watch) return ApplyAndRun(daemon, *chain, input, env, options, out, err);
    auto shared = [&daemon](DaemonOptions* d, std::string*) {
      *d = daemon;
      return true;
    };
    return WatchLoop(*chain, input, env, options, shared, daemon.state_dir, out, err).Run();
  }
  // --no-daemon: a chaind of this command's own, stopped before it returns (its history stays in
  // the state folder; the run's end was stored before Wait saw it).
  PrivateDaemon daemon;
  if (!StartPrivateDaemon(options.daemon, &daemon, &why)) {
    err << "chainctl: --no-daemon: " << why;
    return kExitUnreachable;
  }
  int status;
  if (options.watch) {
    auto private_for = [&](DaemonOptions* d, std::string* why_not) {
      json health;
      if (!DaemonHealth(daemon.options(), &health)) {  // its idle timeout stopped it
        daemon.Stop(nullptr);
        if (!StartPrivateDaemon(options.daemon, &daemon, why_not)) return false;
      }
      *d = daemon.options();
      return true;
    };
    std::string state_dir = daemon.options().state_dir;
    status = WatchLoop(*chain, input, env, options, private_for, state_dir, out, err).Run();
  } else {
    status = ApplyAndRun(daemon.options(), *chain, input, env, options, out, err);
  }
  if (!daemon.Stop(&why)) err << "chainctl: --no-daemon: " << why;
  return status;
}

int RunCancel(const RunOptions& options, std::ostream& out, std::ostream& err) {
  HttpClientResponse response;
  DaemonOptions daemon = ResolveDaemonOptions(options.daemon);
  if (int status =
          Call(daemon, {"POST", "/runs/" + options.run_id + "/cancel", "", ""}, &response, err);
      status != kExitOk) {
    return status;
  }
  out << options.run_id << " cancelling\n";
  return kExitOk;
}

}  // namespace chainctl::cli
