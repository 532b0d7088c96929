// Starting one task process with posix_spawn (DESIGN.md §4 "Spawning"): the lower half of
// ProcessRunner (daemon/exec/process_runner.h), without libuv. Any thread.
//
// glibc's posix_spawn clones with CLONE_VM|CLONE_VFORK: the child shares the daemon's memory
// until it calls exec, so the cost of a spawn does not grow with the daemon's size (fork()
// would copy the page tables of every mapped page), and exec's failure is posix_spawn's
// return value.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <string>

#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

// The attributes every task is spawned with, made once and shared by all spawns:
//   - POSIX_SPAWN_SETPGROUP with pgroup 0: the task leads a new process group (pgid = pid),
//     so signals for the task reach its whole group and the daemon's terminal signals don't;
//   - POSIX_SPAWN_SETSIGMASK: no blocked signals;
//   - POSIX_SPAWN_SETSIGDEF: default dispositions for the standard signals (1-31; the daemon
//     ignores SIGPIPE, and ignored signals would otherwise survive exec).
class SpawnAttributes {
 public:
  SpawnAttributes();
  ~SpawnAttributes();
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;

  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

// A running task process. The caller owns the three descriptors (all close-on-exec) and must
// reap `pid`.
struct SpawnedProcess {
  pid_t pid = -1;      // also the process group id
  int pidfd = -1;      // pidfd_open(pid): readable once the process has exited
  int stdin_fd = -1;   // write end of the pipe that is the task's stdin (-1: stdin_file)
  int stdout_fd = -1;  // read end of the pipe that is the task's stdout
  // Through the spawn helper only (else -1): read end (non-blocking) of the pipe on which the
  // helper says why it could not run the task before it exits 127; ReadSpawnReport.
  int report_fd = -1;
  // When SpawnProcess fails: the errno behind its message (EMFILE, ENOENT, ...), 0 for none.
  int error = 0;
};

// Whether an errno says the system is short of something for a moment (descriptors, processes,
// memory: EMFILE, ENFILE, EAGAIN, ENOMEM), so that the same spawn may work a little later.
bool IsResourceShortage(int error);

// Starts launch.argv (argv[0] is the path executed, no PATH search) with launch.env as the
// whole environment, in launch.workdir ("" = the daemon's), stdin (a pipe, or
// launch.stdin_file) and stdout pipes, stderr
// to launch.log_path (created mode 0600 or truncated; "" = /dev/null), and no other
// descriptor (everything from 3 up is closed in the child). Returns false with `*err`
// naming what failed: the executable ("cannot run /x/y: No such file or directory"), the
// workdir, the log file, or pidfd_open (Linux 5.3 or later is required: there is no
// fallback); then no process is left running or unreaped and no descriptor stays open.
//
// A launch with limits (memory_limit_bytes, cpu_limit_s) is started through `exec_helper`
// (chaind-exec, daemon/exec/exec_helper.cc), which sets them and execs the task; posix_spawn then
// returns once the helper runs, and the helper's failure to run the task comes later, through
// process->report_fd. Without a helper such a launch fails ("" = none).
//
// With `cgroup_procs_fd` (the cgroup.procs of a task's cgroup, task_cgroups.h), the child moves
// itself into that cgroup before it execs (CloneSpawn, with the same attributes and descriptors);
// a failed move fails the spawn like a failed exec.
bool SpawnProcess(const TaskLaunch& launch, const SpawnAttributes& attributes,
                  const std::string& exec_helper, SpawnedProcess* process, std::string* err,
                  int cgroup_procs_fd = -1);

// What the spawn helper wrote on `report_fd` (read without waiting; at most 4 KiB): why it
// could not run the task, e.g. "cannot run /x/y: No such file or directory", or "" if the
// task was run. Call once the process has exited. Does not close `report_fd`.
std::string ReadSpawnReport(int report_fd);

// SIGKILLs the process group `pid` leads and reaps `pid`, waiting for it (it dies at once
// unless stuck in the kernel). For abandoning a process nobody will watch.
void KillGroupAndReap(pid_t pid);

}  // namespace chainctl::daemon
