// When chaind ends by itself rather than on a signal: --exit-when-idle (IdleExit) and
// --exit-with-parent (ParentWatch). Each calls its `stop` callback once, on the loop; the wiring
// (daemon.cc) makes that the shutdown of SIGTERM, so chaind exits 0 as it does then.
//
// Loop thread only. Each owns one libuv handle, freed in its close callback: Close must be
// called before the loop is closed (the shutdown does it), and the object may go any time after.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

namespace chainctl::daemon {

// --exit-when-idle: `stop` once chaind has been idle for `idle_ms`. Idle: `probe` says nothing
// is busy (no run active, no task of a run running, no client connection open: a follower of
// events is a connection) and nothing happened (its `events` count did not move: a connection
// accepted and closed between two checks is activity).
//
// Contract: a uv timer checks every Period(idle_ms) (a quarter of idle_ms, within 10 ms and 1 s),
// so chaind stops between idle_ms and idle_ms + Period after it became idle; activity restarts
// the count. Warm prewarmed processes and idle workers are not activity: they belong to no run.
class IdleExit {
 public:
  struct Activity {
    bool busy = false;    // something is going on now
    uint64_t events = 0;  // grows with each thing that started (connections accepted so far)
  };
  using Probe = std::function<Activity()>;

  // Starts the timer. `idle_ms` > 0.
  IdleExit(uv_loop_t* loop, uint64_t idle_ms, Probe probe, std::function<void()> stop);
  ~IdleExit();  // aborts if the timer was not closed (Close)
  IdleExit(const IdleExit&) = delete;
  IdleExit& operator=(const IdleExit&) = delete;

  // Stops checking; the timer is closed on the loop. A second call does nothing.
  void Close();

  static uint64_t Period(uint64_t idle_ms);

 private:
  static void OnTick(uv_timer_t* timer);

  uv_timer_t* timer_;  // null once closed; freed by its close callback
  uint64_t idle_ms_;
  Probe probe_;
  std::function<void()> stop_;
  uint64_t idle_since_ms_;  // uv_now when chaind was last seen busy
  uint64_t events_;         // probe's events then
};

// --parent-pid: `stop` once chaind's parent, the process that started it (chainctl run
// --no-daemon passes its own pid), has exited, however it ended (a SIGKILL included). Watched
// through a pidfd (Linux 5.3).
class ParentWatch {
 public:
  ParentWatch() = default;
  ~ParentWatch();  // aborts if a started watch was not closed (Close)
  ParentWatch(const ParentWatch&) = delete;
  ParentWatch& operator=(const ParentWatch&) = delete;

  // Before serving: takes hold of `parent`. False with *err if the kernel has no pidfd, or if
  // `parent` is not chaind's parent (any more): it exited, and chaind was handed to another.
  bool Open(pid_t parent, std::string* err);
  // Watches it on `loop` (after Open): `stop` is called once it has exited.
  void Start(uv_loop_t* loop, std::function<void()> stop);
  // Stops watching; the handle is closed on the loop. A second call does nothing.
  void Close();

 private:
  static void OnReadable(uv_poll_t* poll, int status, int events);

  pid_t parent_ = 0;
  int pidfd_ = -1;             // from Open until Close
  uv_poll_t* poll_ = nullptr;  // from Start until Close; freed by its close callback
  std::function<void()> stop_;
};

}  // namespace chainctl::daemon
