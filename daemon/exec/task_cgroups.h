// Each task process in a cgroup v2 of its own, when chaind can make one (issue 15, item 6;
// DESIGN.md §4 "Spawning"): everything a task starts stays in its cgroup, whatever it does
// (setsid, a cleared environment, double forks), and `cgroup.kill` (Linux 5.14) SIGKILLs all of
// it at once when the task ends. Without a cgroup, escapees are found by CHAIN_WORKDIR in /proc
// instead (orphans.h), which misses a descendant that also clears its environment.
//
// Layout: chaind's own cgroup (the "0::" line of /proc/self/cgroup, under the cgroup2 mount of
// /proc/self/mountinfo) gets a child `chaind-HASH`, HASH naming chaind's state folder, so that
// two chainds never share one and a restarted chaind finds (and kills) what it left; in it, one
// cgroup `tN` per spawned process (task attempt, prewarm or worker). No controller is enabled:
// only membership and cgroup.kill are used. A spawned child moves itself into its cgroup
// (writing "0" to its cgroup.procs) before it execs, so nothing of the task runs outside it.
// Loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "daemon/exec/process_spawn.h"

namespace chainctl::daemon {

class TaskCgroups {
 public:
  // One spawn's cgroup; `procs_fd` is its cgroup.procs, open for writing (close-on-exec).
  struct Group {
    TaskCgroups* owner = nullptr;  // which Make made it
    std::string dir;
    int procs_fd = -1;
    bool valid() const { return procs_fd >= 0; }
  };

  // chaind's cgroups for the state folder `state_dir` (see above), after killing and removing
  // what an earlier chaind of that folder left there. nullptr with *why when none can be made
  // (no cgroup v2, no cgroup.kill, or chaind may not create cgroups or move processes there:
  // checked by moving a child process into a probe cgroup).
  static std::unique_ptr<TaskCgroups> Open(const std::string& state_dir, std::string* why);
  // The same, under the cgroup folder `parent` (a test's), named `name`.
  static std::unique_ptr<TaskCgroups> OpenIn(const std::string& parent, const std::string& name,
                                             std::string* why);
  ~TaskCgroups();  // kills what is left in its cgroups and removes them (waits up to 1 s)
  TaskCgroups(const TaskCgroups&) = delete;
  TaskCgroups& operator=(const TaskCgroups&) = delete;

  const std::string& dir() const { return dir_; }

  // A new cgroup for one spawn. False with *err, and the errno in *error.
  bool Make(Group* group, std::string* err, int* error);
  // SIGKILLs every process in `group` (the group stays until Release).
  static void Kill(const Group& group);
  // Kills what is left in `group`, closes its descriptor and removes it: now if it is empty,
  // else later (killed processes take a moment to exit): each Make and Release of its owner
  // retries at most kRetriesPerCall of those waiting, oldest first. `group` is left invalid;
  // nothing for one that is not valid.
  static void Release(Group* group);

 private:
  static constexpr size_t kRetriesPerCall = 4;
  explicit TaskCgroups(std::string dir) : dir_(std::move(dir)) {}
  void RetryRemovals();

  std::string dir_;
  uint64_t next_ = 1;
  std::deque<std::string> waiting_;  // killed cgroups that were not empty yet
};

// SpawnProcess of `launch`, with `cgroups` into a new cgroup of its own, `*group` (released
// again if the spawn fails); without (null), as SpawnProcess alone. The caller Kills the group
// when the process ends and Releases it.
bool SpawnInOwnCgroup(TaskCgroups* cgroups, const TaskLaunch& launch,
                      const SpawnAttributes& attributes, const std::string& exec_helper,
                      SpawnedProcess* process, TaskCgroups::Group* group, std::string* err);

}  // namespace chainctl::daemon
