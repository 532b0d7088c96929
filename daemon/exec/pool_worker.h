// One worker process of the WorkerPool (worker_pool.h says what its states mean and what a
// request's `done` gets), on the loop through WatchedProcess (watched_process.h). Internal to
// the pool: worker_pool.cc (which worker serves what: idle, busy and stopping workers,
// keep-alive, stats) and pool_worker.cc (one worker: its request on the wire, its response,
// how it is stopped and how it ends).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "daemon/exec/watched_process.h"
#include "daemon/exec/worker_pool.h"

namespace chainctl::daemon {

// After End or Abandon (retired), only close callbacks and cancelled writes reach it.
struct WorkerPool::Worker : WatchedProcess {
  using Kind = TaskResult::Kind;
  enum class State { kIdle, kBusy, kStopping };
  enum class Timer { kOff, kKeepAlive, kTimeout, kKillGrace, kDrain, kStdoutGone };

  // The request in flight.
  struct Request {
    Handle handle = 0;
    Done done;
    uint64_t timeout_ms = 0;
    uint64_t max_output_bytes = 0;
    uint64_t kill_grace_ms = 0;
    uint64_t request_bytes = 0;  // the request line's size
    TaskResult result;
    bool failed = false;              // the pool is stopping the worker because of it
    std::optional<Kind> stop_reason;  // kTimedOut, kCancelled, kOutputTooLarge
    std::string error;                // why it failed, if not stop_reason nor a death
  };

  // One uv_write of a request line, with its buffer; freed by its callback.
  struct Write {
    uv_write_t req{};
    Worker* worker = nullptr;
    std::string line;
    Handle handle = 0;
  };

  // `workdir`: the launch's, which the worker's descendants inherit (KillEscapees).
  Worker(WorkerPool* owner, std::string worker_key, std::string workdir);

  void Send(std::unique_ptr<Request> next, std::string line);
  void Fail(std::optional<Kind> reason, std::string error, bool at_once);
  void Terminate(uint64_t grace_ms);
  void Arm(Timer use, uint64_t ms);
  void Disarm();

  void OnStdout(const char* data, size_t size) override;
  void OnStdoutEnded() override;
  void OnReaped() override;
  void OnTimer() override;
  static void OnWritten(uv_write_t* req, int status);

  void Answer(const std::string& line, bool more);
  void Complete(TaskResult result, bool keep);
  void MaybeEnd();
  void End();
  TaskResult Conclude(Request* failed);

  WorkerPool* pool;  // null once it ended by itself (after Abandon it is not used)
  std::string key;
  State state = State::kIdle;
  int64_t end_unix_ms = 0;  // when it was reaped (the pool's clock)
  bool prewarmed = false;
  bool used = false;
  uint64_t keep_alive_ms = 0;
  SteadyTime idle_since{};
  std::string partial;  // stdout bytes of a line not yet ended
  std::unique_ptr<Request> request;
  Timer timer_use = Timer::kOff;
};

}  // namespace chainctl::daemon
