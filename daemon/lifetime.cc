#include "daemon/lifetime.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace chainctl::daemon {
namespace {

template <typename Handle>
void CloseAndFree(Handle* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete reinterpret_cast<Handle*>(h); });
}

}  // namespace

IdleExit::IdleExit(uv_loop_t* loop, uint64_t idle_ms, Probe probe, std::function<void()> stop)
    : timer_(new uv_timer_t),
      idle_ms_(idle_ms),
      probe_(std::move(probe)),
      stop_(std::move(stop)),
      idle_since_ms_(uv_now(loop)),
      events_(probe_().events) {
  uv_timer_init(loop, timer_);
  timer_->data = this;
  uint64_t period = Period(idle_ms);
  uv_timer_start(timer_, OnTick, period, period);
}

IdleExit::~IdleExit() {
  if (timer_) std::abort();  // its handle would be freed while the loop still holds it
}

uint64_t IdleExit::Period(uint64_t idle_ms) { return std::clamp<uint64_t>(idle_ms / 4, 10, 1000); }

void IdleExit::Close() {
  if (!timer_) return;
  CloseAndFree(timer_);
  timer_ = nullptr;
}

void IdleExit::OnTick(uv_timer_t* timer) {
  auto* self = static_cast<IdleExit*>(timer->data);
  uint64_t now = uv_now(timer->loop);
  Activity activity = self->probe_();
  if (activity.busy || activity.events != self->events_) {
    self->idle_since_ms_ = now;
    self->events_ = activity.events;
    return;
  }
  if (now - self->idle_since_ms_ < self->idle_ms_) return;
  self->Close();
  self->stop_();  // may destroy nothing of ours: the owner outlives the loop run
}

ParentWatch::~ParentWatch() {
  if (poll_) std::abort();  // its handle would be freed while the loop still holds it
  if (pidfd_ >= 0) close(pidfd_);
}

bool ParentWatch::Open(pid_t parent, std::string* err) {
  parent_ = parent;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, parent, 0));
  if (pidfd_ < 0 && errno != ESRCH) {
    *err = "--parent-pid: cannot watch process " + std::to_string(parent) + ": " +
           std::strerror(errno) + " (pidfd_open needs Linux 5.3)";
    return false;
  }
  // Checked after the pidfd is held: were the parent gone, the pid could have been reused.
  if (pidfd_ < 0 || getppid() != parent) {
    *err = "--parent-pid: process " + std::to_string(parent) +
           " is not chaind's parent: it has exited, or never was";
    return false;
  }
  return true;
}

void ParentWatch::Start(uv_loop_t* loop, std::function<void()> stop) {
  stop_ = std::move(stop);
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, pidfd_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnReadable);  // a pidfd is readable once its process exited
}

void ParentWatch::Close() {
  if (poll_) CloseAndFree(poll_);  // out of epoll at once: the pidfd may be closed next
  poll_ = nullptr;
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
}

void ParentWatch::OnReadable(uv_poll_t* poll, int, int) {
  auto* self = static_cast<ParentWatch*>(poll->data);
  self->Close();
  self->stop_();
}

}  // namespace chainctl::daemon
