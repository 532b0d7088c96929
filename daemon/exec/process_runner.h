// The local executor (DESIGN.md §4): runs each attempt as a child process of chaind.
//
// Threads: one libuv loop. Every member function is called on the loop's thread, and `done`
// runs there, never from inside Start or Cancel.
//
// Process requirements. SIGPIPE must be ignored process-wide (chaind does it in daemon.cc):
// libuv writes the stdin pipes with write(2), and a task that exits without reading all its
// stdin would otherwise kill the daemon. Children are reaped by pid, so nothing else in the
// process may wait for "any child" (waitpid(-1, ...)) or set SIGCHLD to SIG_IGN.
//
// One attempt:
//   spawn   SpawnProcess (daemon/exec/process_spawn.h): posix_spawn, the task leads its own
//           process group, stdout is a pipe, stdin launch.stdin_file (or a pipe), stderr goes
//           to launch.log_path.
//           Empty fields: workdir "" runs in the daemon's directory, log_path "" sends stderr
//           to /dev/null, output_file "" means there is none.
//   limits  launch.memory_limit_bytes (RLIMIT_DATA, soft and hard) and launch.cpu_limit_s
//           (RLIMIT_CPU: SIGXCPU at the limit, SIGKILL 2 s of CPU time later) are set by the
//           spawn helper chaind-exec (daemon/exec/exec_helper.cc), which is spawned instead and
//           execs the task: in force from the task's first instruction, for each of its
//           processes. Launches without limits are spawned directly. If the helper cannot run
//           the task, the result is kSpawnFailed with the same error as without it.
//   exit    seen through a pidfd (pidfd_open) polled by the loop; no SIGCHLD handler. The
//           process is reaped with wait4 for cpu_s and max_rss_kb.
//   stdin   launch.stdin_file, opened for the task (bytes_in: its size); without one,
//           launch.stdin_data is written by the loop as the task reads it (64 KiB at a time,
//           so any size is fine), then the pipe is closed. A task that exits or closes stdin
//           without reading it all is not an error; bytes_in counts what the pipe accepted.
//   stdout  read as it comes into `output`. One byte over max_output_bytes: reading stops,
//           the group is SIGKILLed, the output is dropped and the result is kOutputTooLarge.
//   group   when the leader exits, its whole process group is SIGKILLed at once (before the
//           leader is reaped, so the group id cannot have been reused), so background
//           processes it left cannot outlive the task nor hold its stdout open. A process
//           that left the group (setsid) and keeps stdout open is waited for at most
//           kill_grace_ms after the exit; then the output is what was read by then.
//   log     launch.max_log_bytes (if not 0) bounds the stderr log on disk: BoundLog
//           (daemon/util/log_bound.h) every kLogCheckMs while the process runs, and at its end.
//   output  if the task exited 0 and wrote output_file (a regular file), the file's content
//           is the output instead of stdout; it is read on the loop thread, bounded by
//           max_output_bytes. bytes_out is the output's size.
//   end     once the process is reaped and stdout is done, `done` runs once.
// Killing (timeout, Cancel): SIGTERM to the group, SIGKILL kill_grace_ms later if the leader
// still runs. When `done` reports a killed group, members other than the leader may still be
// dying: signals are asynchronous.
//
// Results (kind: error):
//   kExited          "exited with status 3"; no error for status 0; under a memory limit
//                    "exited with status 1 (under a memory limit of 64Mi, where allocations
//                    beyond it fail)"
//   kSignaled        "killed by signal 9 (SIGKILL)"; at the CPU-time limit "killed by signal 24
//                    (SIGXCPU): over its CPU-time limit of 3s (cpu x timeout)"
//   kTimedOut        "timed out after 1.5s" (timeout_ms > 0 after the spawn)
//   kCancelled       "cancelled"
//   kOutputTooLarge  "output is over the 16Mi limit (max_output)", "the output file is over
//                    the 16Mi limit (max_output)", or "cannot read the output file P: why"
//   kSpawnFailed     SpawnProcess's error, e.g. "cannot run /x/y: No such file or directory",
//                    "cannot run the spawn helper /x/chaind-exec: ...", or "cannot enforce the
//                    task's limits: chaind has no spawn helper (chaind-exec)"
// exit_code and signal describe the process's end whatever the kind (0 when not started;
// exit_code -1 with an error if something else in the process reaped it first).
// start_unix_ms is taken before the spawn, end_unix_ms when the exit is seen (both from the
// clock); startup_ms is the time from Start until the process was spawned (posix_spawn
// returns after the exec, with vfork semantics; through the helper, after the helper's exec).
//
// Ownership. The runner owns an attempt from Start until its `done` is called; then the
// attempt owns itself until the close callbacks of its libuv handles have run (the next loop
// iteration). Destroying the runner SIGKILLs the groups of attempts still running, reaps them
// (waiting: a killed process dies at once unless stuck in the kernel) and closes their handles
// without calling their `done`. The loop must outlive the runner and run once more after
// either (uv_run with UV_RUN_NOWAIT is enough) before uv_loop_close.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

#include "daemon/exec/process_spawn.h"
#include "daemon/exec/task_cgroups.h"
#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

class ProcessRunner : public TaskRunner {
 public:
  // Milliseconds since the Unix epoch, for the result's start and end times.
  using UnixMsClock = std::function<int64_t()>;

  // `clock` empty: the system clock. `exec_helper`: the path of chaind-exec, which launches
  // with limits are started through ("": such launches fail to spawn). `cgroups`: each process
  // is spawned into a cgroup of its own there, and everything in it is killed when it ends
  // (null: its group, and the escapees KillEscapees finds); it must outlive the runner.
  explicit ProcessRunner(uv_loop_t* loop, UnixMsClock clock = {}, std::string exec_helper = {},
                         TaskCgroups* cgroups = nullptr);
  ~ProcessRunner() override;
  ProcessRunner(const ProcessRunner&) = delete;
  ProcessRunner& operator=(const ProcessRunner&) = delete;

  Handle Start(TaskLaunch launch, Done done) override;
  void Cancel(Handle handle) override;
  size_t running() const override { return running_; }
  // Prewarming (task_runner.h): the process is spawned as for Start but with its stdin an open
  // pipe and no timeout; its readiness (it, or a child of it, blocked in read(2) on fd 0: from
  // /proc/PID/syscall and /proc/PID/task/PID/children, three levels deep) is
  // polled (every 5 ms, then every fifth of its age, at most 100 ms) until seen. It starts at
  // niceness 10, given back (0) when it is taken, if chaind may (root, or RLIMIT_NICE >= 20;
  // else it runs at the normal priority throughout). Start with launch.warm takes it if it is
  // still alive (else spawns anew): the input (launch.stdin_file's content, or stdin_data) is
  // written to its stdin, its stderr log renamed to launch.log_path, the timeout starts then,
  // and the result says cold = false, startup_ms 0, start_unix_ms the time it was taken.
  Handle Prewarm(TaskLaunch launch, WarmEvents events, std::string* err) override;
  WarmState Warm(Handle handle) const override;
  TaskResult StopWarm(Handle handle) override;
  // {"pid", "start_ticks"} of the attempt's process group leader (daemon/exec/orphans.h); null
  // once it has exited or if it never started.
  nlohmann::json Locate(Handle handle) const override;
  // SIGKILLs the stamped process group if it still runs, waiting (up to a second) for it to go.
  void StopOrphan(const nlohmann::json& where) override;

 private:
  // One started attempt or prewarm: its process, handles and result so far (process_attempt.h).
  struct Attempt;

  // Start with launch.warm: the prewarm taken as the attempt (its handle), or 0
  // (process_prewarm.cc).
  Handle TakeWarm(TaskLaunch* launch, Done* done);
  void WatchLogs();            // after an attempt is added: the log check runs while there are any
  void Forget(Handle handle);  // the attempt leaves attempts_ (the log check closes with the last)
  void CheckLogs();            // every kLogCheckMs: BoundLog of each live attempt's log

  uv_loop_t* loop_;
  UnixMsClock clock_;
  std::string exec_helper_;
  TaskCgroups* cgroups_;
  SpawnAttributes attributes_;
  Handle next_handle_ = 1;
  size_t running_ = 0;  // attempts whose `done` is due (not prewarms)
  // Owned: attempts whose `done` is still due, and prewarmed processes not yet taken.
  std::unordered_map<Handle, Attempt*> attempts_;
  std::unique_ptr<char[]> read_buffer_;  // every stdout read, one at a time on the loop
  uv_timer_t* log_check_ = nullptr;      // unreferenced; closed (and freed) with the last attempt
};

}  // namespace chainctl::daemon
