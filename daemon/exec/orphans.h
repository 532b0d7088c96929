// Finding the task processes a previous chaind left behind (DESIGN.md §4 "Durability"), and
// those a task left behind (KillEscapees, below). After a
// crash or `kill -9` of chaind, its tasks' processes keep running with nobody to watch them.
// A restarted chaind kills them before it serves, so nothing runs unsupervised and a resumed
// run never races a leftover of itself. Two ways, because neither alone is enough:
//   - by stamp: the run stores each running task's pid and start time (ProcessStamp); the
//     stamped process's group is killed, even if its members changed their environment. A
//     stamp is written at the next commit after the spawn, so a crash just after a spawn can
//     leave a task without one;
//   - by environment: every task and everything it starts inherits CHAIN_WORKDIR, which lies
//     under the daemon's runs folder, so a scan of /proc finds the rest.
// Linux only (/proc). Processes of other users are not readable unless chaind runs as root;
// they cannot be chaind's tasks anyway.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace chainctl::daemon {

// Who a process is, in a way a reused pid cannot fake: its start time, in clock ticks since
// boot (/proc/PID/stat, field 22).
struct ProcessStamp {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
};

// The stamp of a live process; nullopt if there is no such process.
std::optional<ProcessStamp> StampOf(pid_t pid);

// SIGKILLs the process group that `stamp`'s process leads: all of it if the leader is still
// the stamped process; if the leader has gone, the members left in its group (a group id is
// not reused while a member lives). Nothing if the pid now belongs to another process.
// Returns the pids signalled.
std::vector<pid_t> KillStampedGroup(const ProcessStamp& stamp);

// SIGKILLs every process whose environment has CHAIN_WORKDIR inside `runs_dir`. Returns the
// pids signalled. Must only be called while no task of this daemon runs.
std::vector<pid_t> KillTaskProcesses(const std::string& runs_dir);

// A task's descendants that left its process group (setsid(2), setpgid(2)) escape the
// group's SIGKILL and would outlive the task, reparented to PID 1 (issue 15 item 6). This
// finds them by what they inherited, CHAIN_WORKDIR=`workdir` exactly, among the processes
// created after `leader` (pids are handed out in order, wrapping at pid_max), and SIGKILLs
// each with the group it leads. Call once the task's leader has exited, after its group was
// killed, and before it is reaped (until then its pid cannot be reused). Cheap for a short
// task: one file read, plus one per process the whole machine created meanwhile; beyond 256
// of them, or with `scan_all` (a task that ran long enough for pids to wrap), one pass over
// /proc. Never touches a process this daemon owns (its child leading its own group in the
// daemon's session). A descendant that clears its environment is not found. One caught in
// the middle of an exec (no environment to read for a moment) is looked at again, 1 ms
// apart, for at most 100 ms: the only case where this blocks. Returns the pids killed.
std::vector<pid_t> KillEscapees(pid_t leader, const std::string& workdir, bool scan_all);

// Waits until none of `pids` is alive (gone, or a zombie waiting for its new parent), at
// most `timeout_ms`, polling. False if one is still alive then.
bool WaitGone(const std::vector<pid_t>& pids, int timeout_ms);

}  // namespace chainctl::daemon
