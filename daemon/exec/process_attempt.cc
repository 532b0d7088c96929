// One attempt's life on the loop (process_runner.h, "One attempt" and "Killing"): its stdin
// fed, its stdout collected within max_output_bytes, its timeout and kill grace, the drain of
// stdout after the leader's exit, and the result handed to `done`.
#include "daemon/exec/process_attempt.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "daemon/exec/process_result.h"
#include "daemon/util/log_bound.h"

namespace chainctl::daemon {
namespace {

// One pipe buffer: stdin is written a chunk at a time, so bytes_in is exact up to a chunk cut
// by EPIPE (which counts as unwritten).
constexpr size_t kStdinChunk = 64 * 1024;

}  // namespace

ProcessRunner::Attempt::Attempt(ProcessRunner* owner, Handle handle_id, TaskLaunch task_launch,
                                Done on_done, SteadyTime spawned)
    : WatchedProcess({.loop = owner->loop_,
                      .read_buffer = owner->read_buffer_.get(),
                      .workdir = task_launch.workdir,
                      .spawned = spawned}),
      runner(owner),
      id(handle_id),
      launch(std::move(task_launch)),
      done(std::move(on_done)) {}

// Takes over the spawned process: stdin is fed (prewarmed: kept open and empty), stdout read,
// the exit watched, and the timeout (prewarmed: the readiness poll) starts. Returns 0, or a
// libuv error: then the process is gone (WatchedProcess::Watch).
int ProcessRunner::Attempt::Begin(SpawnedProcess process, TaskCgroups::Group cgroup) {
  if (process.stdin_fd < 0) {  // stdin is launch.stdin_file
    struct stat st {};
    if (stat(launch.stdin_file.c_str(), &st) == 0)
      result.bytes_in = static_cast<uint64_t>(st.st_size);
  } else if (!warm && launch.stdin_data.empty()) {  // empty stdin: the task reads EOF at once
    close(process.stdin_fd);
    process.stdin_fd = -1;
  }
  int rc = Watch(process, std::move(cgroup));
  if (rc < 0) return rc;
  if (warm) {
    // With a hint, the first look is at 80% of the expected start-up; without, at once.
    Arm(Timer::kReadyPoll, std::max<uint64_t>(1, launch.ready_hint_ms * 4 / 5));
    return 0;
  }
  if (stdin_open()) WriteStdinChunk();
  if (launch.timeout_ms > 0) Arm(Timer::kTimeout, launch.timeout_ms);
  return 0;
}

// Ends the attempt as kSpawnFailed, reported on the next loop iteration. Its process, if it
// had one, is gone already (Begin).
void ProcessRunner::Attempt::Fail(std::string error) {
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
  if (exited()) {
    Arm(Timer::kDrain, 0);
    return;
  }
  SignalGroup(SIGTERM);
  Arm(Timer::kKillGrace, launch.kill_grace_ms);
}

// Adds stdout bytes, or stops reading and kills the group once they are over the limit.
void ProcessRunner::Attempt::OnStdout(const char* data, size_t size) {
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

void ProcessRunner::Attempt::OnStdoutEnded() { MaybeFinish(); }

// The leader is reaped (its group and escapees killed): the result's end, then what is left
// of stdout, for at most the grace period (a process that left the group may hold it open).
void ProcessRunner::Attempt::OnReaped() {
  result.end_unix_ms = runner->clock_();
  result.cpu_s = cpu_s();
  result.max_rss_kb = max_rss_kb();
  Disarm();
  if (stdout_open() && stop_reason) CloseStdout();
  if (stdout_open()) Arm(Timer::kDrain, launch.kill_grace_ms);
  MaybeFinish();
}

void ProcessRunner::Attempt::OnTimer() {
  Timer use = timer_use;
  timer_use = Timer::kOff;
  switch (use) {
    case Timer::kOff:
      return;
    case Timer::kReportFailure:
      return Finish();
    case Timer::kTimeout:
      return Stop(Kind::kTimedOut);
    case Timer::kKillGrace:
      return SignalGroup(SIGKILL);
    case Timer::kDrain:
      CloseStdout();
      return MaybeFinish();
    case Timer::kReadyPoll:
      return PollReady();
  }
}

void ProcessRunner::Attempt::OnStdinWritten(uv_write_t* req, int status) {
  auto* attempt = static_cast<Attempt*>(req->data);
  if (!attempt->stdin_open()) return;  // cancelled by FinishStdin
  // A failed chunk (EPIPE: the task closed its stdin) counts as unwritten.
  if (status == 0) attempt->result.bytes_in += attempt->stdin_in_flight;
  attempt->stdin_in_flight = 0;
  if (status < 0 || attempt->result.bytes_in == attempt->launch.stdin_data.size()) {
    attempt->FinishStdin();
  } else {
    attempt->WriteStdinChunk();
  }
}

void ProcessRunner::Attempt::WriteStdinChunk() {
  size_t offset = result.bytes_in;
  size_t size = std::min(kStdinChunk, launch.stdin_data.size() - offset);
  uv_buf_t buf = uv_buf_init(launch.stdin_data.data() + offset, static_cast<unsigned>(size));
  stdin_write.data = this;
  stdin_in_flight = size;
  if (uv_write(&stdin_write, stdin_stream(), &buf, 1, OnStdinWritten) < 0) {
    stdin_in_flight = 0;
    FinishStdin();
  }
}

// Closes stdin. Closing cancels a write in flight; the part of it the pipe took still counts.
void ProcessRunner::Attempt::FinishStdin() {
  if (!stdin_open()) return;
  result.bytes_in += stdin_in_flight - std::min(stdin_in_flight, stdin_write_queue_size());
  stdin_in_flight = 0;
  CloseStdin();
}

void ProcessRunner::Attempt::Arm(Timer use, uint64_t ms) {
  timer_use = use;
  StartTimer(ms);
}

void ProcessRunner::Attempt::Disarm() {
  timer_use = Timer::kOff;
  StopTimer();
}

void ProcessRunner::Attempt::MaybeFinish() {
  if (exited() && !stdout_open() && !retired()) Finish();
}

// Hands the result to `done` (or, a prewarm nobody took, to `warm_ended`); from here on the
// attempt only waits for its close callbacks.
void ProcessRunner::Attempt::Finish() {
  FinishStdin();  // first: closing stdin settles bytes_in
  Retire();
  // The spawn helper could not run the task: a failed spawn, as without the helper.
  std::string report = SpawnReport();
  if (!report.empty()) {
    result.kind = Kind::kSpawnFailed;
    result.error = std::move(report);
    result.exit_code = 0;
    result.output.clear();
  } else if (result.kind != Kind::kSpawnFailed) {
    ConcludeResult(launch, wait_status(), stop_reason, &result);
  }
  BoundLog(launch.log_path, launch.max_log_bytes);  // what it wrote since the last check
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

}  // namespace chainctl::daemon
