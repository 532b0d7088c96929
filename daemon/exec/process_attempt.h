// One attempt of the local runner (process_runner.h says what it does, and who owns it when):
// the process of one task attempt, or a prewarmed process until an attempt takes it, on the
// loop through WatchedProcess (watched_process.h). Internal to the runner: process_runner.cc
// (starting, cancelling), process_attempt.cc (an attempt's life: stdin, stdout, timeout, end)
// and process_prewarm.cc (prewarms: readiness, taking, stopping).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daemon/exec/process_runner.h"
#include "daemon/exec/watched_process.h"

namespace chainctl::daemon {

// After `done` or the runner's destruction (retired), only close callbacks and cancelled writes
// reach it.
struct ProcessRunner::Attempt : WatchedProcess {
  using Kind = TaskResult::Kind;

  // What the timer counts down to.
  enum class Timer {
    kOff,
    kReportFailure,  // 0 ms: report kSpawnFailed after Start has returned
    kTimeout,        // timeout_ms after the spawn: stop with kTimedOut
    kKillGrace,      // SIGTERM was sent: SIGKILL the group
    kDrain,          // the leader is reaped: stop waiting for stdout's EOF
    kReadyPoll,      // prewarmed and starting up: is it blocked reading stdin yet?
  };

  // `spawned`: when the spawn began (Start's call).
  Attempt(ProcessRunner* owner, Handle handle_id, TaskLaunch task_launch, Done on_done,
          SteadyTime spawned);

  // process_attempt.cc
  int Begin(SpawnedProcess process, TaskCgroups::Group cgroup);
  void Fail(std::string error);
  void Stop(Kind reason);

  // process_prewarm.cc
  void Take(TaskLaunch claim, Done on_done);
  void PollReady();
  TaskResult KillWarm();

  // process_attempt.cc
  void OnStdout(const char* data, size_t size) override;
  void OnStdoutEnded() override;
  void OnReaped() override;
  void OnTimer() override;
  static void OnStdinWritten(uv_write_t* req, int status);
  void WriteStdinChunk();
  void FinishStdin();
  void Arm(Timer use, uint64_t ms);
  void Disarm();
  void MaybeFinish();
  void Finish();

  ProcessRunner* runner;  // null once it ended by itself (after Abandon it is not used)
  Handle id;
  TaskLaunch launch;
  Done done;
  // Prewarmed and not yet taken by Start: stdin stays open and empty, `warm_ended` instead of
  // `done` if it ends, the timer polls for readiness (`warm_ready` once it is seen).
  bool warm = false;
  WarmEnded warm_ended;
  std::function<void(double)> warm_ready;
  std::optional<double> ready_ms;  // from the spawn until blocked reading stdin (prewarms)
  uint64_t rss_kb = 0;             // when it was seen ready
  TaskResult result;
  std::optional<Kind> stop_reason;  // why the runner is killing the group, once it is
  size_t stdin_in_flight = 0;       // bytes of the uv_write in flight
  Timer timer_use = Timer::kOff;
  uv_write_t stdin_write;
};

}  // namespace chainctl::daemon
