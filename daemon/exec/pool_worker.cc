// One worker of the pool (worker_pool.h, "Workers" and "Results"): a request line written to its
// stdin, its stdout split into lines and the first one checked as the response, the request
// failed (timeout, Cancel, protocol errors) by stopping the worker, and its end once reaped.
#include "daemon/exec/pool_worker.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstring>
#include <string>
#include <utility>

#include "common/json_text.h"
#include "common/units.h"

namespace chainctl::daemon {
namespace {

using Json = nlohmann::json;
using Kind = TaskResult::Kind;

std::string KilledBy(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) +
         (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

// Why `line` is not a response to request `id`, or "" (then `*response` is it). The reply is
// bytes until checked (common/json_text.h): not UTF-8 or too deep, it is a protocol error like
// any other, never a value that later fails to dump.
std::string ResponseProblem(const std::string& line, WorkerPool::Handle id, Json* response) {
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (!DecodeJsonText(line, response, &fault, &why)) {
    return fault == JsonTextFault::kNotUtf8 ? "the response is " + why
           : fault == JsonTextFault::kTooDeep
               ? "the response " + why
               : "the response is not a JSON object: " + PrintableBytes(line, 200);
  }
  if (!response->is_object()) {
    return "the response is not a JSON object: " + PrintableBytes(line, 200);
  }
  if (!response->contains("id") || (*response)["id"] != Json(id)) {
    return "the response's id is " + DumpJson(response->value("id", Json())) + ", not " +
           std::to_string(id);
  }
  if (!response->contains("output") && !response->contains("error")) {
    return "the response has neither \"output\" nor \"error\"";
  }
  return "";
}

}  // namespace

WorkerPool::Worker::Worker(WorkerPool* owner, std::string worker_key, std::string workdir)
    : WatchedProcess({.loop = owner->loop_,
                      .read_buffer = owner->read_buffer_.get(),
                      .workdir = std::move(workdir),
                      .spawned = std::chrono::steady_clock::now(),
                      .lives_long = true}),
      pool(owner),
      key(std::move(worker_key)) {}

// Writes `line` (the request, "\n"-ended) without blocking and awaits the response.
void WorkerPool::Worker::Send(std::unique_ptr<Request> next, std::string line) {
  state = State::kBusy;
  used = true;
  request = std::move(next);
  request->request_bytes = line.size();
  if (request->timeout_ms > 0) Arm(Timer::kTimeout, request->timeout_ms);
  auto* write = new Write;
  write->line = std::move(line);
  write->handle = request->handle;
  write->req.data = write;
  write->worker = this;
  uv_buf_t buf = uv_buf_init(write->line.data(), static_cast<unsigned>(write->line.size()));
  int rc = stdin_open() ? uv_write(&write->req, stdin_stream(), &buf, 1, OnWritten) : UV_EPIPE;
  if (rc < 0) {
    delete write;
    Fail(std::nullopt, std::string("worker does not read its stdin: ") + uv_strerror(rc), true);
  }
}

// The request failed (see the header): the worker is stopped, `done` comes once it is reaped.
// `at_once`: SIGKILL; else stdin is closed, SIGTERM, SIGKILL after the request's grace.
void WorkerPool::Worker::Fail(std::optional<Kind> reason, std::string error, bool at_once) {
  if (!request || request->failed) return;
  request->failed = true;
  request->stop_reason = reason;
  request->error = std::move(error);
  std::string().swap(partial);
  if (exited()) {  // only stdout's end was awaited: stop (on the next iteration, not in Cancel)
    Arm(Timer::kDrain, 0);
    return;
  }
  if (at_once) {
    SignalGroup(SIGKILL);
    Disarm();
    return;
  }
  Terminate(request->kill_grace_ms);
}

// Asks the worker to go: stdin's end, SIGTERM, SIGKILL after `grace_ms`.
void WorkerPool::Worker::Terminate(uint64_t grace_ms) {
  CloseStdin();
  SignalGroup(SIGTERM);
  Arm(Timer::kKillGrace, grace_ms);
}

void WorkerPool::Worker::Arm(Timer use, uint64_t ms) {
  timer_use = use;
  StartTimer(ms);
}

void WorkerPool::Worker::Disarm() {
  timer_use = Timer::kOff;
  StopTimer();
}

// Splits stdout into lines; the first complete one answers the request. Output while no
// request awaits an answer is a broken worker (idle) or ignored (being stopped).
void WorkerPool::Worker::OnStdout(const char* data, size_t size) {
  if (state == State::kIdle) return pool->StopWorker(this, true);
  if (state != State::kBusy || request->failed) return;
  size_t start = 0;
  while (start < size) {
    const void* newline = memchr(data + start, '\n', size - start);
    size_t end = newline ? static_cast<size_t>(static_cast<const char*>(newline) - data) : size;
    if (partial.size() + (end - start) > request->max_output_bytes) {
      return Fail(Kind::kOutputTooLarge, "", true);
    }
    partial.append(data + start, end - start);
    if (!newline) return;
    start = end + 1;
    std::string line = std::move(partial);
    partial.clear();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are noise
    return Answer(line, start < size);
  }
}

void WorkerPool::Worker::OnStdoutEnded() {
  if (exited()) return MaybeEnd();
  if (state == State::kIdle) return pool->StopWorker(this, true);
  // Mostly a worker that is exiting: its exit status says more than the stdout's end.
  if (state == State::kBusy && !request->failed) Arm(Timer::kStdoutGone, request->kill_grace_ms);
}

// The leader is reaped (its group and escapees killed): a request still awaiting its response
// waits for stdout's end for the grace period (the response may still be in the pipe).
void WorkerPool::Worker::OnReaped() {
  end_unix_ms = pool->clock_();
  CloseStdin();
  Disarm();
  bool awaiting_answer = state == State::kBusy && !request->failed;
  if (stdout_open() && awaiting_answer) {
    Arm(Timer::kDrain, request->kill_grace_ms);
  } else {
    CloseStdout();
  }
  MaybeEnd();
}

void WorkerPool::Worker::OnTimer() {
  Timer use = timer_use;
  timer_use = Timer::kOff;
  switch (use) {
    case Timer::kOff:
      return;
    case Timer::kKeepAlive:
      return pool->ExpireIdle(this, false);
    case Timer::kTimeout:
      return Fail(Kind::kTimedOut, "", false);
    case Timer::kKillGrace:
      return SignalGroup(SIGKILL);
    case Timer::kDrain:
      CloseStdout();
      return MaybeEnd();
    case Timer::kStdoutGone:
      return Fail(std::nullopt, "worker died during the request: closed its stdout", true);
  }
}

void WorkerPool::Worker::OnWritten(uv_write_t* req, int status) {
  std::unique_ptr<Write> write(static_cast<Write*>(req->data));
  Worker* worker = write->worker;  // alive: the stdin pipe's close callback comes after this
  bool current = !worker->retired() && worker->request && worker->request->handle == write->handle;
  if (!current) return;
  if (status == 0) {
    worker->request->result.bytes_in = write->line.size();
  } else if (status != UV_ECANCELED) {
    worker->Fail(std::nullopt,
                 std::string("worker does not read its stdin: ") + uv_strerror(status), true);
  }
}

// The response `line` ends the request. `more`: the worker wrote something after it.
void WorkerPool::Worker::Answer(const std::string& line, bool more) {
  Json response;
  std::string problem = ResponseProblem(line, request->handle, &response);
  if (!problem.empty()) return Fail(std::nullopt, "worker protocol error: " + problem, true);
  TaskResult result = std::move(request->result);
  result.kind = Kind::kExited;
  result.end_unix_ms = pool->clock_();
  result.bytes_in = request->request_bytes;  // it answered: it read the whole line
  if (response.contains("error")) {
    const Json& error = response["error"];
    result.exit_code = 1;
    result.error =
        "worker error: " + (error.is_string() ? error.get<std::string>() : DumpJson(error));
  } else {
    result.exit_code = 0;
    result.output = DumpJson(response["output"]);
    result.bytes_out = result.output.size();
  }
  bool keep = !more && (result.exit_code == 0 || pool->options_.reuse_after_error);
  Complete(std::move(result), keep);
}

// Hands `result` to the request's `done`, after the worker went idle (`keep`) or is stopped.
void WorkerPool::Worker::Complete(TaskResult result, bool keep) {
  std::unique_ptr<Request> done_request = std::move(request);
  WorkerPool* owner = pool;
  owner->busy_.erase(done_request->handle);
  Disarm();
  if (exited()) {  // it answered, then died: only stdout's end was awaited
    state = State::kStopping;
    CloseStdout();
    MaybeEnd();
  } else if (keep) {
    owner->MakeIdle(this);
  } else {
    state = State::kStopping;
    owner->stopping_.insert(this);
    Terminate(owner->options_.kill_grace_ms);
  }
  done_request->done(std::move(result));  // last: may destroy the pool or run more
}

void WorkerPool::Worker::MaybeEnd() {
  if (exited() && !stdout_open() && !retired()) End();
}

// The worker is gone: it leaves the pool and a request still in flight fails.
void WorkerPool::Worker::End() {
  Retire();
  WorkerPool* owner = pool;
  pool = nullptr;
  owner->Forget(this);
  if (!request) return;
  std::unique_ptr<Request> failed = std::move(request);
  TaskResult result = Conclude(failed.get());
  failed->done(std::move(result));  // last: may destroy the pool or run more
}

// The result of a request whose worker is reaped without having answered it.
TaskResult WorkerPool::Worker::Conclude(Request* failed) {
  TaskResult result = std::move(failed->result);
  int status = wait_status().value_or(0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result.end_unix_ms = end_unix_ms;
  result.cpu_s = cpu_s();
  result.max_rss_kb = max_rss_kb();
  result.output.clear();
  std::string report = SpawnReport();
  std::string how = result.signal != 0 ? KilledBy(result.signal)
                                       : "exited with status " + std::to_string(result.exit_code);
  if (!wait_status()) {
    result.exit_code = -1;
    how = "its exit status was lost: another part of the daemon reaped it";
  } else if (result.signal == 0 && result.exit_code == 0) {
    result.exit_code = 1;  // no answer is no success
  }
  result.kind = result.signal != 0 ? Kind::kSignaled : Kind::kExited;
  if (!report.empty()) {
    result.kind = Kind::kSpawnFailed;
    result.error = std::move(report);
    result.exit_code = 0;
  } else if (failed->stop_reason == Kind::kTimedOut) {
    result.kind = Kind::kTimedOut;
    result.error = "timed out after " + FormatDuration(Duration(failed->timeout_ms));
  } else if (failed->stop_reason == Kind::kCancelled) {
    result.kind = Kind::kCancelled;
    result.error = "cancelled";
  } else if (failed->stop_reason == Kind::kOutputTooLarge) {
    result.kind = Kind::kOutputTooLarge;
    result.error =
        "response is over the " + FormatSize(failed->max_output_bytes) + " limit (max_output)";
  } else if (!failed->error.empty()) {
    result.error = failed->error + " (" + how + ")";
  } else {
    result.error = "worker died during the request: " + how;
  }
  return result;
}

}  // namespace chainctl::daemon
