#include "daemon/exec/watched_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <utility>

#include "daemon/exec/orphans.h"

namespace chainctl::daemon {
namespace {

double SecondsOf(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

// wait4(2), again after an interruption.
pid_t Wait4(pid_t pid, int options, int* status, rusage* usage) {
  pid_t reaped;
  do {
    reaped = wait4(pid, status, options, usage);
  } while (reaped < 0 && errno == EINTR);
  return reaped;
}

uv_handle_t* AsHandle(void* handle) { return static_cast<uv_handle_t*>(handle); }

}  // namespace

WatchedProcess::WatchedProcess(Settings settings)
    : loop_(settings.loop),
      read_buffer_(settings.read_buffer),
      workdir_(std::move(settings.workdir)),
      spawned_(settings.spawned),
      lives_long_(settings.lives_long) {
  uv_timer_init(loop_, &timer_);  // cannot fail
  timer_.data = this;
  timer_open_ = true;
  ++open_handles_;
}

WatchedProcess::~WatchedProcess() {
  if (pidfd_ >= 0) close(pidfd_);
  if (report_fd_ >= 0) close(report_fd_);
}

int WatchedProcess::Watch(const SpawnedProcess& process, TaskCgroups::Group cgroup) {
  pid_ = process.pid;
  pidfd_ = process.pidfd;
  report_fd_ = process.report_fd;
  cgroup_ = std::move(cgroup);
  int rc = process.stdin_fd >= 0 ? OpenPipe(&stdin_, &stdin_open_, process.stdin_fd) : 0;
  int stdout_rc = OpenPipe(&stdout_, &stdout_open_, process.stdout_fd);
  if (rc == 0) rc = stdout_rc;
  if (rc == 0) rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&stdout_), OnAlloc, OnRead);
  if (rc == 0) rc = StartPolling();
  if (rc < 0) {
    KillAndReap();
    CloseStdin();
    CloseStdout();
    CloseHandle(AsHandle(&exit_poll_), &exit_poll_open_);
  }
  return rc;
}

void WatchedProcess::Abandon() {
  KillAndReap();
  Retire();
}

void WatchedProcess::SignalGroup(int sig) const {
  if (pid_ > 0) kill(-pid_, sig);
}

uint64_t WatchedProcess::ResidentKb() const {
  if (pid_ <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? resident * static_cast<uint64_t>(page) / 1024 : 0;
}

void WatchedProcess::KillAll() {
  SignalGroup(SIGKILL);
  if (cgroup_.valid()) return TaskCgroups::Kill(cgroup_);
  // Beyond 10 s, pids may have wrapped since the spawn: look at every process.
  bool scan_all =
      lives_long_ || std::chrono::steady_clock::now() - spawned_ > std::chrono::seconds(10);
  KillEscapees(pid_, workdir_, scan_all);
}

void WatchedProcess::KillAndReap() {
  if (pid_ <= 0) return;
  KillAll();
  int status = 0;
  if (Wait4(pid_, 0, &status, &usage_) > 0) wait_status_ = status;
  exited_ = true;
  pid_ = -1;
}

void WatchedProcess::Retire() {
  retired_ = true;
  CloseStdin();
  CloseStdout();
  CloseHandle(AsHandle(&exit_poll_), &exit_poll_open_);
  CloseHandle(AsHandle(&timer_), &timer_open_);
  TaskCgroups::Release(&cgroup_);
}

void WatchedProcess::StartTimer(uint64_t ms) { uv_timer_start(&timer_, OnTimerFired, ms, 0); }

void WatchedProcess::StopTimer() { uv_timer_stop(&timer_); }

void WatchedProcess::CloseStdin() { CloseHandle(AsHandle(&stdin_), &stdin_open_); }

void WatchedProcess::CloseStdout() { CloseHandle(AsHandle(&stdout_), &stdout_open_); }

double WatchedProcess::cpu_s() const {
  return SecondsOf(usage_.ru_utime) + SecondsOf(usage_.ru_stime);
}

std::string WatchedProcess::SpawnReport() const {
  return report_fd_ >= 0 ? ReadSpawnReport(report_fd_) : std::string();
}

// A pidfd is readable once its process has exited.
void WatchedProcess::OnExit(uv_poll_t* poll, int /*status*/, int /*events*/) {
  static_cast<WatchedProcess*>(poll->data)->Reap();
}

void WatchedProcess::OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  auto* self = static_cast<WatchedProcess*>(handle->data);
  *buf = uv_buf_init(self->read_buffer_, kReadBufferSize);
}

void WatchedProcess::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<WatchedProcess*>(stream->data);
  if (nread > 0) {
    self->OnStdout(buf->base, static_cast<size_t>(nread));
  } else if (nread < 0) {  // UV_EOF, or an error, which ends stdout as well
    self->CloseStdout();
    self->OnStdoutEnded();
  }
}

void WatchedProcess::OnTimerFired(uv_timer_t* timer) {
  static_cast<WatchedProcess*>(timer->data)->OnTimer();
}

void WatchedProcess::OnClosed(uv_handle_t* handle) {
  auto* self = static_cast<WatchedProcess*>(handle->data);
  if (--self->open_handles_ == 0 && self->retired_) delete self;
}

// Opens `pipe` on `fd`, which it owns from now on (closed here if opening fails).
int WatchedProcess::OpenPipe(uv_pipe_t* pipe, bool* open, int fd) {
  uv_pipe_init(loop_, pipe, 0);  // cannot fail
  pipe->data = this;
  *open = true;
  ++open_handles_;
  int rc = uv_pipe_open(pipe, fd);
  if (rc < 0) close(fd);
  return rc;
}

int WatchedProcess::StartPolling() {
  int rc = uv_poll_init(loop_, &exit_poll_, pidfd_);
  if (rc < 0) return rc;
  exit_poll_.data = this;
  exit_poll_open_ = true;
  ++open_handles_;
  return uv_poll_start(&exit_poll_, UV_READABLE, OnExit);
}

// The leader has exited: SIGKILL what is left of its group and its escapees, then reap it.
void WatchedProcess::Reap() {
  KillAll();
  rusage usage{};
  int status = 0;
  pid_t reaped = Wait4(pid_, WNOHANG, &status, &usage);
  if (reaped == 0) return;  // not a zombie after all: keep polling
  if (reaped > 0) wait_status_ = status;
  usage_ = usage;
  exited_ = true;
  pid_ = -1;
  CloseHandle(AsHandle(&exit_poll_), &exit_poll_open_);
  OnReaped();
}

void WatchedProcess::CloseHandle(uv_handle_t* handle, bool* open) {
  if (!*open) return;
  *open = false;
  uv_close(handle, OnClosed);
}

}  // namespace chainctl::daemon
