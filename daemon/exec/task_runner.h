// How the orchestrator has tasks run (DESIGN.md §4 "executors are pluggable"). The
// orchestrator decides what runs and with which input; a TaskRunner only runs one attempt of
// one task and reports how it ended. Nothing above this interface may assume a local pid.
//
// The local implementation is daemon/exec/process_runner.h (subprocesses); unit tests of the
// orchestrator use a fake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace chainctl::daemon {

// Everything needed to start one attempt of one task. Paths are absolute and the folders
// exist (the orchestrator makes them); files named here are written by the orchestrator
// before Start, except `log_path` and `output_file`, which the task's run creates.
struct TaskLaunch {
  std::string run_id;
  std::string task_id;
  int attempt = 1;                // counts from 1 (CHAIN_ATTEMPT)
  std::vector<std::string> argv;  // argv[0] is an absolute path (e.g. /bin/sh for `command`)
  // The complete environment of the task, "NAME=value" (the daemon's own environment, the
  // task's `env`, and the CHAIN_* variables: the orchestrator puts them all here).
  std::vector<std::string> env;
  // The run's scratch folder of the task ($CHAIN_WORKDIR): what tells its escaped processes
  // (orphans.h), and its current directory unless `cwd` is set.
  std::string workdir;
  std::string cwd;  // the task's current directory (the project's; DESIGN.md §3); "": workdir
  std::string stdin_data;  // written to the task's stdin, then stdin is closed
  // If set, the task's stdin is this file instead (stdin_data is not used): no pipe and no
  // writing on the loop. The orchestrator gives the $CHAIN_INPUT_FILE it writes anyway.
  std::string stdin_file;
  std::string log_path;     // the task's stderr goes here (created, truncated)
  std::string output_file;  // $CHAIN_OUTPUT_FILE: if the task wrote it, it is the output
  uint64_t max_output_bytes = 16ull << 20;  // stdout (or output_file) above this fails the task
  uint64_t max_log_bytes = 0;  // the stderr log kept within this on disk (log_bound.h); 0: no bound
  uint64_t timeout_ms = 0;     // 0: none. Then SIGTERM to the group, SIGKILL later
  uint64_t kill_grace_ms = 5000;  // between SIGTERM and SIGKILL
  // Limits of the task's processes (0: none), in force before its program runs (the local
  // runner: setrlimit, see process_runner.h). Each process of the task has them on its own.
  uint64_t memory_limit_bytes = 0;  // resource_requirements.memory: allocations beyond fail
  uint64_t cpu_limit_s = 0;         // seconds of CPU time: cpu x timeout; then SIGXCPU
  // Start: a process prewarmed by Prewarm (same argv, env, workdir and limits, none of them
  // run-specific) becomes this attempt instead of a new spawn. 0: spawn one.
  uint64_t warm = 0;
  // Prewarm: when the process is expected to be ready (its start-ups measured before; 0:
  // unknown). A runner that has to look for readiness looks from about then on, not all along.
  uint64_t ready_hint_ms = 0;
};

// How one attempt ended.
struct TaskResult {
  enum class Kind {
    kExited,          // exit_code says how (0 = success as far as the process goes)
    kSignaled,        // killed by `signal`
    kTimedOut,        // ran past timeout_ms and was killed
    kOutputTooLarge,  // stdout (the group is killed) or output_file over max_output_bytes,
                      // or an output_file that cannot be read
    kSpawnFailed,     // the process could not be started (error says why)
    kCancelled,       // Cancel() was called; the group was killed
  };
  Kind kind = Kind::kExited;
  int exit_code = 0;  // how the process ended, whatever the kind (0 if it never started)
  int signal = 0;
  std::string output;         // stdout, or the output file's content if the task wrote one
  std::string error;          // for every kind but kExited with 0: one line saying what happened
  int64_t start_unix_ms = 0;  // when the process was started
  int64_t end_unix_ms = 0;    // when its exit was seen
  double startup_ms = 0;      // from Start to the process running the task's program (exec done)
  double cpu_s = 0;           // user + system of the task's process and waited-for children
  int64_t max_rss_kb = 0;
  uint64_t bytes_in = 0;   // stdin bytes the task was given (its stdin_file's size)
  uint64_t bytes_out = 0;  // output bytes read
  bool cold = true;        // false when a prewarmed process was used (DESIGN.md §5)
  // kSpawnFailed only: the system was short of descriptors, processes or memory (EMFILE,
  // ENFILE, EAGAIN, ENOMEM), so the same attempt may start a moment later.
  bool retryable = false;

  bool ok() const { return kind == Kind::kExited && exit_code == 0; }
};

// Runs attempts. Loop thread only. `done` is called exactly once per Start, on the loop
// thread, later (never from inside Start or Cancel), unless the runner is destroyed first.
class TaskRunner {
 public:
  using Handle = uint64_t;  // identifies one started attempt; never 0
  using Done = std::function<void(TaskResult)>;

  virtual ~TaskRunner() = default;
  virtual Handle Start(TaskLaunch launch, Done done) = 0;
  // Stops the attempt (its `done` then reports kCancelled); nothing if it already ended.
  virtual void Cancel(Handle handle) = 0;
  // Attempts started and not yet done.
  virtual size_t running() const = 0;

  // Prewarming at level `spawn` (DESIGN.md §5): starts `launch`'s process now, its stdin a pipe
  // that stays open and empty, so it starts up and blocks reading its input. Start with
  // launch.warm = the returned handle hands it its input and makes it the attempt; until then
  // it is not an attempt (running() does not count it). Its events come later, on the loop, and
  // never after Start took it or StopWarm stopped it: `ready` once it blocked reading its input
  // (with its start-up time: from the spawn until then), `ended` if it ends before it is taken,
  // with what its end says (cpu_s, max_rss_kb, times, error). Either may be empty. Returns 0 (and
  // sets *err) if it cannot be started, or if this runner cannot prewarm.
  using WarmEnded = std::function<void(TaskResult)>;
  struct WarmEvents {
    std::function<void(double ready_ms)> ready;
    WarmEnded ended;
  };
  virtual Handle Prewarm(TaskLaunch /*launch*/, WarmEvents /*events*/, std::string* err) {
    *err = "this executor cannot prewarm processes";
    return 0;
  }
  struct WarmState {
    bool alive = false;                // prewarmed, not yet taken nor stopped
    std::optional<double> ready_ms{};  // start-up time: from the spawn until it blocked reading
                                       // its input; nullopt while it is still starting up
    double age_ms = 0;                 // since the spawn
    uint64_t rss_kb = 0;               // resident memory when last seen
  };
  virtual WarmState Warm(Handle /*handle*/) const { return {}; }
  // Kills a prewarmed process that was not taken (SIGKILL to its group) and returns what it
  // cost: cpu_s, max_rss_kb, start and end times. `ended` is not called. Nothing if not alive.
  virtual TaskResult StopWarm(Handle /*handle*/) { return {}; }

  // Crash recovery (DESIGN.md §4 "Durability"). Where a started attempt runs, as JSON only
  // this kind of runner understands (the local one: {"pid", "start_ticks"}); null if it has
  // nothing to say. The orchestrator stores it with the running task.
  virtual nlohmann::json Locate(Handle /*handle*/) const { return nullptr; }
  // Stops what `where` (from Locate, stored by a chaind that has since died) still runs, so
  // nothing runs unsupervised. Called before the loop runs; returns once it is stopped.
  virtual void StopOrphan(const nlohmann::json& /*where*/) {}
};

}  // namespace chainctl::daemon
