// The local runner's prewarming (process_runner.h, Prewarm): processes spawned ahead with an
// open, empty stdin, their readiness seen in /proc, taken by Start or stopped.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "common/read_file.h"
#include "daemon/exec/clocks.h"
#include "daemon/exec/process_attempt.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;

constexpr int kPrewarmNice = 10;  // prewarmed processes start up at this niceness

// The whole of a (small) file: a prewarmed task's input, given through a pipe.
bool ReadWholeFile(const std::string& path, std::string* out, std::string* err) {
  int error = ReadFileBytes(path, out);
  if (error == 0) return true;
  *err = "cannot read " + path + ": " + std::strerror(error);
  return false;
}

// Whether `pid`, or a process it started (a shell runs its commands as children), is blocked in
// read(2) on its stdin, which it inherited: /proc/PID/syscall is "NR ARG0 ..." while the process
// is in a system call ("running" otherwise); children from /proc/PID/task/PID/children, only
// looked at while the process waits in a system call (a running one is still starting itself).
bool BlockedReadingStdin(pid_t pid, int depth = 3) {
  std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream in(proc + "/syscall");
  long number = -1;
  std::string arg0;
  if (!(in >> number >> arg0)) return false;  // running, or gone
  if (number == SYS_read && arg0 == "0x0") return true;
  if (depth == 0) return false;
  std::ifstream children(proc + "/task/" + std::to_string(pid) + "/children");
  pid_t child = 0;
  while (children >> child) {
    if (BlockedReadingStdin(child, depth - 1)) return true;
  }
  return false;
}

// Whether chaind may lower a process's niceness back to 0 (Linux: root, or RLIMIT_NICE >= 20).
bool CanRestorePriority() {
  static const bool can = [] {
    rlimit limit{};
    return geteuid() == 0 || (getrlimit(RLIMIT_NICE, &limit) == 0 && limit.rlim_cur >= 20);
  }();
  return can;
}

}  // namespace

TaskRunner::Handle ProcessRunner::Prewarm(TaskLaunch launch, WarmEvents events, std::string* err) {
  launch.stdin_file.clear();
  launch.stdin_data.clear();
  launch.timeout_ms = 0;
  Handle handle = next_handle_++;
  auto* attempt =
      new Attempt(this, handle, std::move(launch), nullptr, std::chrono::steady_clock::now());
  attempt->warm = true;
  attempt->warm_ended = std::move(events.ended);
  attempt->warm_ready = std::move(events.ready);
  attempt->result.start_unix_ms = clock_();
  SpawnedProcess process;
  TaskCgroups::Group cgroup;
  if (!SpawnInOwnCgroup(cgroups_, attempt->launch, attributes_, exec_helper_, &process, &cgroup,
                        err)) {
    attempt->Abandon();  // it deletes itself once its timer is closed
    return 0;
  }
  // A prewarm starts up in the background: the work of running tasks comes first. Only if its
  // priority can be given back when it is taken (root, or RLIMIT_NICE allows nice 0).
  if (CanRestorePriority()) {
    setpriority(PRIO_PGRP, static_cast<id_t>(process.pid), kPrewarmNice);
  }
  attempts_.emplace(handle, attempt);
  WatchLogs();
  int rc = attempt->Begin(process, std::move(cgroup));
  if (rc < 0) {
    *err = std::string("cannot watch the prewarmed process: ") + uv_strerror(rc);
    Forget(handle);
    attempt->Abandon();
    return 0;
  }
  return handle;
}

TaskRunner::WarmState ProcessRunner::Warm(Handle handle) const {
  auto it = attempts_.find(handle);
  if (it == attempts_.end() || !it->second->warm || it->second->exited()) return {};
  const Attempt& a = *it->second;
  return {
      .alive = true, .ready_ms = a.ready_ms, .age_ms = MsSince(a.spawned()), .rss_kb = a.rss_kb};
}

TaskResult ProcessRunner::StopWarm(Handle handle) {
  auto it = attempts_.find(handle);
  if (it == attempts_.end() || !it->second->warm || it->second->exited()) return {};
  return it->second->KillWarm();
}

// Start with launch.warm: the prewarmed process becomes the attempt if it is still alive and the
// attempt's input can be read. The input is read before the process is taken. One that cannot be
// read (a missing file, or no descriptor free) stops the prewarm, which was handed over to this
// launch, and goes to a cold spawn, which says why. Returns the handle, or 0 (then Start spawns
// anew); `*launch` and `*done` are moved from only when it is taken.
TaskRunner::Handle ProcessRunner::TakeWarm(TaskLaunch* launch, Done* done) {
  auto it = attempts_.find(launch->warm);
  if (it == attempts_.end() || !it->second->warm || it->second->exited() ||
      it->second->stop_reason) {
    return 0;
  }
  std::string err;
  if (!launch->stdin_file.empty() &&
      !ReadWholeFile(launch->stdin_file, &launch->stdin_data, &err)) {
    StopWarm(launch->warm);
    return 0;
  }
  launch->stdin_file.clear();
  Handle handle = it->first;
  it->second->Take(std::move(*launch), std::move(*done));
  ++running_;
  return handle;
}

// A prewarmed process becomes the attempt `claim`: its input is written to the stdin it is
// blocked on, its stderr log is moved to the attempt's, and the attempt's timeout starts now.
void ProcessRunner::Attempt::Take(TaskLaunch claim, Done on_done) {
  warm = false;
  // Back to the priority of a task.
  if (pid() > 0 && CanRestorePriority()) setpriority(PRIO_PGRP, static_cast<id_t>(pid()), 0);
  warm_ended = nullptr;
  warm_ready = nullptr;
  done = std::move(on_done);
  Disarm();
  if (!launch.log_path.empty() && !claim.log_path.empty()) {
    rename(launch.log_path.c_str(), claim.log_path.c_str());
  }
  std::string input = std::move(claim.stdin_data);  // Start read claim.stdin_file into it
  launch.run_id = std::move(claim.run_id);
  launch.task_id = std::move(claim.task_id);
  launch.attempt = claim.attempt;
  launch.stdin_data = std::move(input);
  launch.stdin_file.clear();
  launch.log_path = std::move(claim.log_path);
  launch.output_file = std::move(claim.output_file);
  launch.max_output_bytes = claim.max_output_bytes;
  launch.max_log_bytes = claim.max_log_bytes;
  launch.timeout_ms = claim.timeout_ms;
  launch.kill_grace_ms = claim.kill_grace_ms;
  result.start_unix_ms = runner->clock_();
  result.startup_ms = 0;
  result.cold = false;
  if (launch.stdin_data.empty()) {
    FinishStdin();
  } else {
    WriteStdinChunk();
  }
  if (launch.timeout_ms > 0) Arm(Timer::kTimeout, launch.timeout_ms);
}

// Ready means blocked in read(2) on fd 0, as /proc/PID/syscall shows ("0 0x0 ..." on x86-64).
void ProcessRunner::Attempt::PollReady() {
  if (pid() <= 0 || exited()) return;
  double age = MsSince(spawned());
  if (BlockedReadingStdin(pid())) {
    ready_ms = age;
    rss_kb = ResidentKb();
    if (warm_ready) {
      auto ready = std::move(warm_ready);
      warm_ready = nullptr;
      ready(age);  // may take or stop this process: nothing of it is used after
    }
    return;
  }
  // Each look reads /proc files. Near an expected start-up (the hint), every 5% of it; else every
  // 5 ms at first, then every fifth of the age so far (the start-up is known within 20%), at
  // most every 100 ms.
  double hint = static_cast<double>(launch.ready_hint_ms);
  double next = hint > 0 && age < 1.5 * hint ? hint / 20 : age / 5;
  Arm(Timer::kReadyPoll, static_cast<uint64_t>(std::clamp(next, 5.0, 100.0)));
}

// Kills a prewarmed process now and reaps it, for what it cost.
TaskResult ProcessRunner::Attempt::KillWarm() {
  KillAndReap();
  TaskResult cost;
  cost.kind = Kind::kCancelled;
  cost.start_unix_ms = result.start_unix_ms;
  cost.end_unix_ms = runner->clock_();
  cost.cpu_s = cpu_s();
  cost.max_rss_kb = max_rss_kb();
  cost.cold = false;
  runner->Forget(id);
  runner = nullptr;
  Retire();
  return cost;
}

}  // namespace chainctl::daemon
