#include "daemon/exec/process_runner.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "common/read_file.h"
#include "daemon/util/log_bound.h"
#include "daemon/exec/orphans.h"
#include "daemon/exec/process_result.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;

// One pipe buffer: stdin is written a chunk at a time, so bytes_in is exact up to a chunk cut
// by EPIPE (which counts as unwritten), and a read fills at most one.
constexpr size_t kStdinChunk = 64 * 1024;
constexpr size_t kReadBufferSize = 64 * 1024;
constexpr int kPrewarmNice = 10;  // prewarmed processes start up at this niceness

int64_t SystemUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsOf(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

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

uint64_t ResidentKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

// Whether chaind may lower a process's niceness back to 0 (Linux: root, or RLIMIT_NICE >= 20).
bool CanRestorePriority() {
  static const bool can = [] {
    rlimit limit{};
    return geteuid() == 0 || (getrlimit(RLIMIT_NICE, &limit) == 0 && limit.rlim_cur >= 20);
  }();
  return can;
}

// wait4(2), again after an interruption.
pid_t Wait4(pid_t pid, int options, int* status, rusage* usage) {
  pid_t reaped;
  do {
    reaped = wait4(pid, status, options, usage);
  } while (reaped < 0 && errno == EINTR);
  return reaped;
}

uv_stream_t* Stream(uv_pipe_t* pipe) { return reinterpret_cast<uv_stream_t*>(pipe); }
uv_handle_t* AsHandle(void* handle) { return static_cast<uv_handle_t*>(handle); }

}  // namespace

// One started attempt (see the header for who owns it when). After `done` or the runner's
// destruction (`finished`), only close callbacks reach it.
struct ProcessRunner::Attempt {
  // What the timer counts down to.
  enum class Timer {
    kOff,
    kReportFailure,  // 0 ms: report kSpawnFailed after Start has returned
    kTimeout,        // timeout_ms after the spawn: stop with kTimedOut
    kKillGrace,      // SIGTERM was sent: SIGKILL the group
    kDrain,          // the leader is reaped: stop waiting for stdout's EOF
    kReadyPoll,      // prewarmed and starting up: is it blocked reading stdin yet?
  };

  Attempt(ProcessRunner* owner, TaskRunner::Handle handle_id, TaskLaunch task_launch, Done on_done);
  ~Attempt();

  int Watch(const SpawnedProcess& process);
  void Take(TaskLaunch claim, Done on_done);
  void PollReady();
  TaskResult KillWarm();
  void Fail(std::string error);
  void Stop(Kind reason);
  void Abandon();

  static void OnExit(uv_poll_t* poll, int status, int events);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnStdinWritten(uv_write_t* req, int status);
  static void OnTimer(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);

  int OpenPipe(uv_pipe_t* pipe, bool* open, int fd);
  int StartStdin(int fd);
  void WriteStdinChunk();
  void CloseStdin();
  void CloseStdout();
  void CloseHandle(uv_handle_t* handle, bool* open);
  void CloseProcessHandles();
  void Arm(Timer use, uint64_t ms);
  void Disarm();
  void SignalGroup(int sig) const;
  void KillGroup();
  void Append(const char* data, size_t size);
  void Reap();
  void MaybeFinish();
  void Finish();

  ProcessRunner* runner;  // null once finished
  TaskRunner::Handle id;
  TaskLaunch launch;
  Done done;
  // Prewarmed and not yet taken by Start: stdin stays open and empty, `warm_ended` instead of
  // `done` if it ends, the timer polls for readiness (`warm_ready` once it is seen).
  bool warm = false;
  WarmEnded warm_ended;
  std::function<void(double)> warm_ready;
  std::chrono::steady_clock::time_point spawned;  // when the process was started
  std::optional<double> ready_ms;  // from the spawn until blocked reading stdin (prewarms)
  uint64_t rss_kb = 0;             // when it was seen ready
  TaskResult result;
  std::optional<Kind> stop_reason;  // why the runner is killing the group, once it is
  pid_t pid = -1;                   // the leader until reaped (-1 before and after)
  int pidfd = -1;                   // closed by ~Attempt, after the poll handle is closed
  int report_fd = -1;               // the spawn helper's (SpawnedProcess); closed by ~Attempt
  bool exited = false;              // reaped
  std::optional<int> wait_status;   // once reaped; nullopt if someone else reaped it
  size_t stdin_in_flight = 0;       // bytes of the uv_write in flight
  int open_handles = 0;             // initialised handles whose close callback has not run
  bool finished = false;
  Timer timer_use = Timer::kOff;
  bool timer_open = false, exit_poll_open = false, stdout_open = false, stdin_open = false;
  uv_timer_t timer;
  uv_poll_t exit_poll;
  uv_pipe_t stdout_pipe;
  uv_pipe_t stdin_pipe;
  uv_write_t stdin_write;
  TaskCgroups::Group cgroup;  // the process's own, with the runner's cgroups_
};

ProcessRunner::Attempt::Attempt(ProcessRunner* owner, TaskRunner::Handle handle_id,
                                TaskLaunch task_launch, Done on_done)
    : runner(owner), id(handle_id), launch(std::move(task_launch)), done(std::move(on_done)) {
  uv_timer_init(runner->loop_, &timer);  // cannot fail
  timer.data = this;
  timer_open = true;
  ++open_handles;
}

ProcessRunner::Attempt::~Attempt() {
  if (pidfd >= 0) close(pidfd);
  if (report_fd >= 0) close(report_fd);
}

// Takes over the process's descriptors: stdin writing, stdout reading, the exit poll and the
// timeout. Returns 0 or a libuv error; either way each descriptor is a handle's or closed.
int ProcessRunner::Attempt::Watch(const SpawnedProcess& process) {
  pid = process.pid;
  pidfd = process.pidfd;
  report_fd = process.report_fd;
  int rc =
      warm ? OpenPipe(&stdin_pipe, &stdin_open, process.stdin_fd) : StartStdin(process.stdin_fd);
  int stdout_rc = OpenPipe(&stdout_pipe, &stdout_open, process.stdout_fd);
  if (rc == 0) rc = stdout_rc;
  if (rc == 0) rc = uv_read_start(Stream(&stdout_pipe), OnAlloc, OnRead);
  if (rc == 0) rc = uv_poll_init(runner->loop_, &exit_poll, pidfd);
  if (rc == 0) {
    exit_poll.data = this;
    exit_poll_open = true;
    ++open_handles;
    rc = uv_poll_start(&exit_poll, UV_READABLE, OnExit);
  }
  // With a hint, the first look is at 80% of the expected start-up; without, at once.
  if (rc == 0 && warm) Arm(Timer::kReadyPoll, std::max<uint64_t>(1, launch.ready_hint_ms * 4 / 5));
  if (rc == 0 && !warm && launch.timeout_ms > 0) Arm(Timer::kTimeout, launch.timeout_ms);
  return rc;
}

// A prewarmed process becomes the attempt `claim`: its input is written to the stdin it is
// blocked on, its stderr log is moved to the attempt's, and the attempt's timeout starts now.
void ProcessRunner::Attempt::Take(TaskLaunch claim, Done on_done) {
  warm = false;
  // Back to the priority of a task.
  if (pid > 0 && CanRestorePriority()) setpriority(PRIO_PGRP, static_cast<id_t>(pid), 0);
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
    CloseStdin();
  } else {
    WriteStdinChunk();
  }
  if (launch.timeout_ms > 0) Arm(Timer::kTimeout, launch.timeout_ms);
}

// Ready means blocked in read(2) on fd 0, as /proc/PID/syscall shows ("0 0x0 ..." on x86-64).
void ProcessRunner::Attempt::PollReady() {
  if (pid <= 0 || exited) return;
  double age =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - spawned).count();
  if (BlockedReadingStdin(pid)) {
    ready_ms = age;
    rss_kb = ResidentKb(pid);
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
  KillGroup();
  rusage usage{};
  int status = 0;
  Wait4(pid, 0, &status, &usage);
  pid = -1;
  exited = true;
  TaskResult cost;
  cost.kind = Kind::kCancelled;
  cost.start_unix_ms = result.start_unix_ms;
  cost.end_unix_ms = runner->clock_();
  cost.cpu_s = SecondsOf(usage.ru_utime) + SecondsOf(usage.ru_stime);
  cost.max_rss_kb = usage.ru_maxrss;
  cost.cold = false;
  TaskCgroups::Release(&cgroup);
  runner->Forget(id);
  runner = nullptr;
  finished = true;
  CloseProcessHandles();
  CloseHandle(AsHandle(&timer), &timer_open);
  return cost;
}

// Ends the attempt as kSpawnFailed, reported on the next loop iteration.
void ProcessRunner::Attempt::Fail(std::string error) {
  if (pid > 0) KillGroupAndReap(pid);
  pid = -1;
  TaskCgroups::Release(&cgroup);
  CloseProcessHandles();
  result.kind = Kind::kSpawnFailed;
  result.error = std::move(error);
  result.end_unix_ms = runner->clock_();
  Arm(Timer::kReportFailure, 0);
}

// Timeout and Cancel: SIGTERM now, SIGKILL after the grace period. If the leader is already
// reaped only stdout is left: stop waiting for it (on the next iteration, not inside Cancel).
void ProcessRunner::Attempt::Stop(Kind reason) {
  if (stop_reason || result.kind == Kind::kSpawnFailed) return;
  stop_reason = reason;
  if (exited) {
    Arm(Timer::kDrain, 0);
    return;
  }
  SignalGroup(SIGTERM);
  Arm(Timer::kKillGrace, launch.kill_grace_ms);
}

// The runner is going away: kill and reap the process, close everything, no `done`.
void ProcessRunner::Attempt::Abandon() {
  if (pid > 0) KillGroup();
  if (pid > 0) KillGroupAndReap(pid);
  pid = -1;
  TaskCgroups::Release(&cgroup);
  runner = nullptr;
  finished = true;
  CloseProcessHandles();
  CloseHandle(AsHandle(&timer), &timer_open);
}

// A pidfd is readable once its process has exited.
void ProcessRunner::Attempt::OnExit(uv_poll_t* poll, int /*status*/, int /*events*/) {
  static_cast<Attempt*>(poll->data)->Reap();
}

void ProcessRunner::Attempt::OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  auto* attempt = static_cast<Attempt*>(handle->data);
  *buf = uv_buf_init(attempt->runner->read_buffer_.get(), kReadBufferSize);
}

void ProcessRunner::Attempt::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* attempt = static_cast<Attempt*>(stream->data);
  if (nread > 0) {
    attempt->Append(buf->base, static_cast<size_t>(nread));
  } else if (nread < 0) {  // UV_EOF, or an error, which ends stdout as well
    attempt->CloseStdout();
    attempt->MaybeFinish();
  }
}

void ProcessRunner::Attempt::OnStdinWritten(uv_write_t* req, int status) {
  auto* attempt = static_cast<Attempt*>(req->data);
  if (!attempt->stdin_open) return;  // cancelled by CloseStdin
  // A failed chunk (EPIPE: the task closed its stdin) counts as unwritten.
  if (status == 0) attempt->result.bytes_in += attempt->stdin_in_flight;
  attempt->stdin_in_flight = 0;
  if (status < 0 || attempt->result.bytes_in == attempt->launch.stdin_data.size()) {
    attempt->CloseStdin();
  } else {
    attempt->WriteStdinChunk();
  }
}

void ProcessRunner::Attempt::OnTimer(uv_timer_t* timer) {
  auto* attempt = static_cast<Attempt*>(timer->data);
  Timer use = attempt->timer_use;
  attempt->timer_use = Timer::kOff;
  switch (use) {
    case Timer::kOff:
      return;
    case Timer::kReportFailure:
      return attempt->Finish();
    case Timer::kTimeout:
      return attempt->Stop(Kind::kTimedOut);
    case Timer::kKillGrace:
      return attempt->SignalGroup(SIGKILL);
    case Timer::kDrain:
      attempt->CloseStdout();
      return attempt->MaybeFinish();
    case Timer::kReadyPoll:
      return attempt->PollReady();
  }
}

void ProcessRunner::Attempt::OnClosed(uv_handle_t* handle) {
  auto* attempt = static_cast<Attempt*>(handle->data);
  if (--attempt->open_handles == 0 && attempt->finished) delete attempt;
}

// Opens `pipe` on `fd`, which it owns from now on (closed here if opening fails).
int ProcessRunner::Attempt::OpenPipe(uv_pipe_t* pipe, bool* open, int fd) {
  uv_pipe_init(runner->loop_, pipe, 0);  // cannot fail
  pipe->data = this;
  *open = true;
  ++open_handles;
  int rc = uv_pipe_open(pipe, fd);
  if (rc < 0) close(fd);
  return rc;
}

// Owns `fd` from now on. Empty stdin: the task reads EOF at once.
int ProcessRunner::Attempt::StartStdin(int fd) {
  if (fd < 0) {  // stdin is launch.stdin_file
    struct stat st {};
    if (stat(launch.stdin_file.c_str(), &st) == 0)
      result.bytes_in = static_cast<uint64_t>(st.st_size);
    return 0;
  }
  if (launch.stdin_data.empty()) {
    close(fd);
    return 0;
  }
  int rc = OpenPipe(&stdin_pipe, &stdin_open, fd);
  if (rc == 0) WriteStdinChunk();
  return rc;
}

void ProcessRunner::Attempt::WriteStdinChunk() {
  size_t offset = result.bytes_in;
  size_t size = std::min(kStdinChunk, launch.stdin_data.size() - offset);
  uv_buf_t buf = uv_buf_init(launch.stdin_data.data() + offset, static_cast<unsigned>(size));
  stdin_write.data = this;
  stdin_in_flight = size;
  if (uv_write(&stdin_write, Stream(&stdin_pipe), &buf, 1, OnStdinWritten) < 0) {
    stdin_in_flight = 0;
    CloseStdin();
  }
}

// Closing cancels a write in flight; the part of it the pipe took still counts.
void ProcessRunner::Attempt::CloseStdin() {
  if (!stdin_open) return;
  result.bytes_in += stdin_in_flight - std::min(stdin_in_flight, stdin_pipe.write_queue_size);
  stdin_in_flight = 0;
  CloseHandle(AsHandle(&stdin_pipe), &stdin_open);
}

void ProcessRunner::Attempt::CloseStdout() { CloseHandle(AsHandle(&stdout_pipe), &stdout_open); }

void ProcessRunner::Attempt::CloseHandle(uv_handle_t* handle, bool* open) {
  if (!*open) return;
  *open = false;
  uv_close(handle, OnClosed);
}

// Every handle but the timer. The pidfd is closed with the attempt: uv_close has stopped
// polling it.
void ProcessRunner::Attempt::CloseProcessHandles() {
  CloseStdin();
  CloseStdout();
  CloseHandle(AsHandle(&exit_poll), &exit_poll_open);
}

void ProcessRunner::Attempt::Arm(Timer use, uint64_t ms) {
  timer_use = use;
  uv_timer_start(&timer, OnTimer, ms, 0);
}

void ProcessRunner::Attempt::Disarm() {
  timer_use = Timer::kOff;
  uv_timer_stop(&timer);
}

// Only while the leader is unreaped: until then its pid, the group's id, cannot be reused.
void ProcessRunner::Attempt::SignalGroup(int sig) const {
  if (pid > 0) kill(-pid, sig);
}

// Adds stdout bytes, or stops reading and kills the group once they are over the limit.
void ProcessRunner::Attempt::Append(const char* data, size_t size) {
  if (result.output.size() + size <= launch.max_output_bytes) {
    result.output.append(data, size);
    return;
  }
  if (!stop_reason) stop_reason = Kind::kOutputTooLarge;
  std::string().swap(result.output);
  SignalGroup(SIGKILL);
  if (timer_use == Timer::kTimeout || timer_use == Timer::kKillGrace) Disarm();
  CloseStdout();
  MaybeFinish();
}

// SIGKILLs the group and the descendants that left it: all of its cgroup, or without one
// those KillEscapees finds. Only while the leader is unreaped.
void ProcessRunner::Attempt::KillGroup() {
  SignalGroup(SIGKILL);
  if (cgroup.valid()) return TaskCgroups::Kill(cgroup);
  // Beyond 10 s, pids may have wrapped since the spawn: look at every process.
  bool ran_long = std::chrono::steady_clock::now() - spawned > std::chrono::seconds(10);
  KillEscapees(pid, launch.workdir, ran_long);
}

// The leader has exited: SIGKILL what is left of its group and its escapees, then reap it.
void ProcessRunner::Attempt::Reap() {
  KillGroup();
  rusage usage{};
  int status = 0;
  pid_t reaped = Wait4(pid, WNOHANG, &status, &usage);
  if (reaped == 0) return;  // not a zombie after all: keep polling
  if (reaped > 0) wait_status = status;
  exited = true;
  pid = -1;
  result.end_unix_ms = runner->clock_();
  result.cpu_s = SecondsOf(usage.ru_utime) + SecondsOf(usage.ru_stime);
  result.max_rss_kb = usage.ru_maxrss;
  CloseHandle(AsHandle(&exit_poll), &exit_poll_open);
  Disarm();
  if (stdout_open && stop_reason) CloseStdout();
  if (stdout_open) Arm(Timer::kDrain, launch.kill_grace_ms);
  MaybeFinish();
}

void ProcessRunner::Attempt::MaybeFinish() {
  if (exited && !stdout_open && !finished) Finish();
}

// Hands the result to `done`; from here on the attempt only waits for its close callbacks.
void ProcessRunner::Attempt::Finish() {
  CloseProcessHandles();  // first: closing stdin settles bytes_in
  CloseHandle(AsHandle(&timer), &timer_open);
  // The spawn helper could not run the task: a failed spawn, as without the helper.
  std::string report = report_fd >= 0 ? ReadSpawnReport(report_fd) : std::string();
  if (!report.empty()) {
    result.kind = Kind::kSpawnFailed;
    result.error = std::move(report);
    result.exit_code = 0;
    result.output.clear();
  } else if (result.kind != Kind::kSpawnFailed) {
    ConcludeResult(launch, wait_status, stop_reason, &result);
  }
  BoundLog(launch.log_path, launch.max_log_bytes);  // what it wrote since the last check
  TaskCgroups::Release(&cgroup);
  finished = true;
  runner->Forget(id);
  if (!warm) --runner->running_;
  runner = nullptr;
  if (warm) {  // ended before anything took it
    WarmEnded callback = std::move(warm_ended);
    if (callback) callback(std::move(result));
    return;
  }
  Done callback = std::move(done);
  callback(std::move(result));  // may destroy the runner or start attempts
}

ProcessRunner::ProcessRunner(uv_loop_t* loop, UnixMsClock clock, std::string exec_helper,
                             TaskCgroups* cgroups)
    : loop_(loop),
      clock_(clock ? std::move(clock) : SystemUnixMs),
      exec_helper_(std::move(exec_helper)),
      cgroups_(cgroups),
      read_buffer_(new char[kReadBufferSize]) {}

ProcessRunner::~ProcessRunner() {
  for (auto& [handle, attempt] : attempts_) attempt->Abandon();
  if (log_check_) {
    uv_close(AsHandle(log_check_),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
  }
}

void ProcessRunner::WatchLogs() {
  if (!log_check_) {
    log_check_ = new uv_timer_t;
    uv_timer_init(loop_, log_check_);  // cannot fail
    log_check_->data = this;
    uv_unref(AsHandle(log_check_));  // it never keeps the loop alive by itself
  }
  if (uv_is_active(AsHandle(log_check_))) return;
  uv_timer_start(
      log_check_, [](uv_timer_t* timer) { static_cast<ProcessRunner*>(timer->data)->CheckLogs(); },
      kLogCheckMs, kLogCheckMs);
}

void ProcessRunner::Forget(Handle handle) {
  attempts_.erase(handle);
  if (!attempts_.empty() || !log_check_) return;
  // Closed while nothing runs, so that none is left open when chaind closes its loop.
  uv_close(AsHandle(log_check_),
           [](uv_handle_t* timer) { delete reinterpret_cast<uv_timer_t*>(timer); });
  log_check_ = nullptr;
}

void ProcessRunner::CheckLogs() {
  for (auto& [handle, attempt] : attempts_) {
    if (!attempt->exited) BoundLog(attempt->launch.log_path, attempt->launch.max_log_bytes);
  }
}

TaskRunner::Handle ProcessRunner::Start(TaskLaunch launch, Done done) {
  auto started = std::chrono::steady_clock::now();
  if (launch.warm != 0) {
    auto it = attempts_.find(launch.warm);
    if (it != attempts_.end() && it->second->warm && !it->second->exited &&
        !it->second->stop_reason) {
      // The input is read before the process is taken. One that cannot be read (a missing
      // file, or no descriptor free) stops the prewarm, which was handed over to this launch,
      // and goes to a cold spawn, which says why.
      std::string err;
      if (launch.stdin_file.empty() || ReadWholeFile(launch.stdin_file, &launch.stdin_data, &err)) {
        launch.stdin_file.clear();
        Handle handle = it->first;
        it->second->Take(std::move(launch), std::move(done));
        ++running_;
        return handle;
      }
      StopWarm(launch.warm);
    }
  }
  ++running_;
  Handle handle = next_handle_++;
  auto* attempt = new Attempt(this, handle, std::move(launch), std::move(done));
  attempts_.emplace(handle, attempt);
  WatchLogs();
  attempt->result.start_unix_ms = clock_();
  attempt->spawned = started;
  SpawnedProcess process;
  std::string err;
  if (!SpawnInOwnCgroup(cgroups_, attempt->launch, attributes_, exec_helper_, &process,
                        &attempt->cgroup, &err)) {
    attempt->result.retryable = IsResourceShortage(process.error);
    attempt->Fail(std::move(err));
    return handle;
  }
  attempt->result.startup_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  int rc = attempt->Watch(process);
  if (rc < 0) attempt->Fail(std::string("cannot watch the task's process: ") + uv_strerror(rc));
  return handle;
}

TaskRunner::Handle ProcessRunner::Prewarm(TaskLaunch launch, WarmEvents events, std::string* err) {
  launch.stdin_file.clear();
  launch.stdin_data.clear();
  launch.timeout_ms = 0;
  Handle handle = next_handle_++;
  auto* attempt = new Attempt(this, handle, std::move(launch), nullptr);
  attempt->warm = true;
  attempt->warm_ended = std::move(events.ended);
  attempt->warm_ready = std::move(events.ready);
  attempt->result.start_unix_ms = clock_();
  attempt->spawned = std::chrono::steady_clock::now();
  SpawnedProcess process;
  if (!SpawnInOwnCgroup(cgroups_, attempt->launch, attributes_, exec_helper_, &process,
                        &attempt->cgroup, err)) {
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
  int rc = attempt->Watch(process);
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
  if (it == attempts_.end() || !it->second->warm || it->second->exited) return {};
  const Attempt& a = *it->second;
  return {.alive = true,
          .ready_ms = a.ready_ms,
          .age_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                              a.spawned)
                        .count(),
          .rss_kb = a.rss_kb};
}

TaskResult ProcessRunner::StopWarm(Handle handle) {
  auto it = attempts_.find(handle);
  if (it == attempts_.end() || !it->second->warm || it->second->exited) return {};
  return it->second->KillWarm();
}

nlohmann::json ProcessRunner::Locate(Handle handle) const {
  auto it = attempts_.find(handle);
  if (it == attempts_.end() || it->second->pid <= 0) return nullptr;
  std::optional<ProcessStamp> stamp = StampOf(it->second->pid);
  if (!stamp) return nullptr;
  return {{"pid", stamp->pid}, {"start_ticks", stamp->start_ticks}};
}

void ProcessRunner::StopOrphan(const nlohmann::json& where) {
  if (!where.is_object() || !where.value("pid", nlohmann::json()).is_number_integer()) return;
  ProcessStamp stamp{where["pid"].get<pid_t>(), where.value("start_ticks", uint64_t{0})};
  WaitGone(KillStampedGroup(stamp), 1000);
}

void ProcessRunner::Cancel(Handle handle) {
  auto it = attempts_.find(handle);
  if (it != attempts_.end()) it->second->Stop(Kind::kCancelled);
}

}  // namespace chainctl::daemon
