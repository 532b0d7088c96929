#include "daemon/exec/worker_pool.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "common/json_text.h"
#include "common/units.h"
#include "daemon/exec/orphans.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;
using Json = nlohmann::json;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr size_t kReadBufferSize = 64 * 1024;

int64_t SystemUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MsSince(SteadyTime start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

double SecondsOf(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

uv_stream_t* Stream(uv_pipe_t* pipe) { return reinterpret_cast<uv_stream_t*>(pipe); }
uv_handle_t* AsHandle(void* handle) { return static_cast<uv_handle_t*>(handle); }

// Resident set size of `pid` in KiB, 0 if unknown.
uint64_t RssKb(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? resident * static_cast<uint64_t>(page) / 1024 : 0;
}

std::string KilledBy(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) +
         (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

}  // namespace

// One worker process (see the header for its states). After End or Abandon (`ended`), only
// close callbacks and cancelled writes reach it; the last close callback deletes it.
struct WorkerPool::Worker {
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

  Worker(WorkerPool* owner, std::string worker_key);
  ~Worker();

  int Watch(const SpawnedProcess& process);
  void Send(std::unique_ptr<Request> next, std::string line);
  void Fail(std::optional<Kind> reason, std::string error, bool at_once);
  void Terminate(uint64_t grace_ms);
  void Abandon();

  static void OnExit(uv_poll_t* poll, int status, int events);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnWritten(uv_write_t* req, int status);
  static void OnTimer(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);

  int OpenPipe(uv_pipe_t* pipe, bool* open, int fd);
  void Consume(const char* data, size_t size);
  void Answer(const std::string& line, bool more);
  void Complete(TaskResult result, bool keep);
  void StdoutEnded();
  void Reap();
  void MaybeEnd();
  void End();
  TaskResult Conclude(Request* failed);
  void CloseHandle(uv_handle_t* handle, bool* open);
  void CloseAll();
  void Arm(Timer use, uint64_t ms);
  void Disarm();
  void Signal(int sig) const;
  void KillAll();

  WorkerPool* pool;  // null once ended
  std::string key;
  std::string workdir;        // its CHAIN_WORKDIR, which its descendants inherit (KillEscapees)
  TaskCgroups::Group cgroup;  // its own, with options_.cgroups (task_cgroups.h)
  State state = State::kIdle;
  pid_t pid = -1;      // the group leader until reaped
  int pidfd = -1;      // closed by ~Worker
  int report_fd = -1;  // the spawn helper's; closed by ~Worker
  bool reaped = false;
  std::optional<int> wait_status;  // once reaped; nullopt if someone else reaped it
  rusage usage{};
  int64_t end_unix_ms = 0;
  bool prewarmed = false;
  bool used = false;
  uint64_t keep_alive_ms = 0;
  SteadyTime idle_since{};
  std::string partial;  // stdout bytes of a line not yet ended
  std::unique_ptr<Request> request;
  bool ended = false;
  int open_handles = 0;
  Timer timer_use = Timer::kOff;
  bool timer_open = false, exit_poll_open = false, stdout_open = false, stdin_open = false;
  uv_timer_t timer{};
  uv_poll_t exit_poll{};
  uv_pipe_t stdout_pipe{};
  uv_pipe_t stdin_pipe{};
};

WorkerPool::Worker::Worker(WorkerPool* owner, std::string worker_key)
    : pool(owner), key(std::move(worker_key)) {
  uv_timer_init(pool->loop_, &timer);  // cannot fail
  timer.data = this;
  timer_open = true;
  ++open_handles;
}

WorkerPool::Worker::~Worker() {
  if (pidfd >= 0) close(pidfd);
  if (report_fd >= 0) close(report_fd);
}

// Takes over the process's descriptors. Returns 0 or a libuv error; either way each
// descriptor is a handle's or closed.
int WorkerPool::Worker::Watch(const SpawnedProcess& process) {
  pid = process.pid;
  pidfd = process.pidfd;
  report_fd = process.report_fd;
  int rc = OpenPipe(&stdin_pipe, &stdin_open, process.stdin_fd);
  int stdout_rc = OpenPipe(&stdout_pipe, &stdout_open, process.stdout_fd);
  if (rc == 0) rc = stdout_rc;
  if (rc == 0) rc = uv_read_start(Stream(&stdout_pipe), OnAlloc, OnRead);
  if (rc == 0) rc = uv_poll_init(pool->loop_, &exit_poll, pidfd);
  if (rc == 0) {
    exit_poll.data = this;
    exit_poll_open = true;
    ++open_handles;
    rc = uv_poll_start(&exit_poll, UV_READABLE, OnExit);
  }
  return rc;
}

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
  int rc = stdin_open ? uv_write(&write->req, Stream(&stdin_pipe), &buf, 1, OnWritten) : UV_EPIPE;
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
  if (reaped) {  // only stdout's end was awaited: stop (on the next iteration, not in Cancel)
    Arm(Timer::kDrain, 0);
    return;
  }
  if (at_once) {
    Signal(SIGKILL);
    Disarm();
    return;
  }
  Terminate(request->kill_grace_ms);
}

// Asks the worker to go: stdin's end, SIGTERM, SIGKILL after `grace_ms`.
void WorkerPool::Worker::Terminate(uint64_t grace_ms) {
  CloseHandle(AsHandle(&stdin_pipe), &stdin_open);
  Signal(SIGTERM);
  Arm(Timer::kKillGrace, grace_ms);
}

// The pool is going away: kill and reap, close everything, no `done`.
void WorkerPool::Worker::Abandon() {
  if (pid > 0) KillAll();
  if (pid > 0) KillGroupAndReap(pid);
  pid = -1;
  TaskCgroups::Release(&cgroup);
  pool = nullptr;
  ended = true;
  CloseAll();
}

void WorkerPool::Worker::OnExit(uv_poll_t* poll, int /*status*/, int /*events*/) {
  static_cast<Worker*>(poll->data)->Reap();
}

void WorkerPool::Worker::OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  auto* worker = static_cast<Worker*>(handle->data);
  *buf = uv_buf_init(worker->pool->read_buffer_.get(), kReadBufferSize);
}

void WorkerPool::Worker::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* worker = static_cast<Worker*>(stream->data);
  if (nread > 0) {
    worker->Consume(buf->base, static_cast<size_t>(nread));
  } else if (nread < 0) {  // UV_EOF, or an error, which ends stdout as well
    worker->StdoutEnded();
  }
}

void WorkerPool::Worker::OnWritten(uv_write_t* req, int status) {
  std::unique_ptr<Write> write(static_cast<Write*>(req->data));
  Worker* worker = write->worker;  // alive: the stdin pipe's close callback comes after this
  bool current = !worker->ended && worker->request && worker->request->handle == write->handle;
  if (!current) return;
  if (status == 0) {
    worker->request->result.bytes_in = write->line.size();
  } else if (status != UV_ECANCELED) {
    worker->Fail(std::nullopt,
                 std::string("worker does not read its stdin: ") + uv_strerror(status), true);
  }
}

void WorkerPool::Worker::OnTimer(uv_timer_t* timer) {
  auto* worker = static_cast<Worker*>(timer->data);
  Timer use = worker->timer_use;
  worker->timer_use = Timer::kOff;
  switch (use) {
    case Timer::kOff:
      return;
    case Timer::kKeepAlive:
      return worker->pool->ExpireIdle(worker, false);
    case Timer::kTimeout:
      return worker->Fail(Kind::kTimedOut, "", false);
    case Timer::kKillGrace:
      return worker->Signal(SIGKILL);
    case Timer::kDrain:
      worker->CloseHandle(AsHandle(&worker->stdout_pipe), &worker->stdout_open);
      return worker->MaybeEnd();
    case Timer::kStdoutGone:
      return worker->Fail(std::nullopt, "worker died during the request: closed its stdout", true);
  }
}

void WorkerPool::Worker::OnClosed(uv_handle_t* handle) {
  auto* worker = static_cast<Worker*>(handle->data);
  if (--worker->open_handles == 0 && worker->ended) delete worker;
}

// Opens `pipe` on `fd`, which it owns from now on (closed here if opening fails).
int WorkerPool::Worker::OpenPipe(uv_pipe_t* pipe, bool* open, int fd) {
  uv_pipe_init(pool->loop_, pipe, 0);  // cannot fail
  pipe->data = this;
  *open = true;
  ++open_handles;
  int rc = uv_pipe_open(pipe, fd);
  if (rc < 0) close(fd);
  return rc;
}

// Splits stdout into lines; the first complete one answers the request. Output while no
// request awaits an answer is a broken worker (idle) or ignored (being stopped).
void WorkerPool::Worker::Consume(const char* data, size_t size) {
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

// The response `line` ends the request. `more`: the worker wrote something after it.
void WorkerPool::Worker::Answer(const std::string& line, bool more) {
  // The reply is bytes until checked (common/json_text.h): not UTF-8 or too deep, it is a
  // protocol error like any other, never a value that later fails to dump.
  Json response;
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  std::string problem;
  if (!DecodeJsonText(line, &response, &fault, &why)) {
    problem = fault == JsonTextFault::kNotUtf8 ? "the response is " + why
              : fault == JsonTextFault::kTooDeep
                  ? "the response " + why
                  : "the response is not a JSON object: " + PrintableBytes(line, 200);
  } else if (!response.is_object()) {
    problem = "the response is not a JSON object: " + PrintableBytes(line, 200);
  } else if (!response.contains("id") || response["id"] != Json(request->handle)) {
    problem = "the response's id is " + DumpJson(response.value("id", Json())) + ", not " +
              std::to_string(request->handle);
  } else if (!response.contains("output") && !response.contains("error")) {
    problem = "the response has neither \"output\" nor \"error\"";
  }
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
  if (reaped) {  // it answered, then died: only stdout's end was awaited
    state = State::kStopping;
    CloseHandle(AsHandle(&stdout_pipe), &stdout_open);
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

void WorkerPool::Worker::StdoutEnded() {
  CloseHandle(AsHandle(&stdout_pipe), &stdout_open);
  if (reaped) return MaybeEnd();
  if (state == State::kIdle) return pool->StopWorker(this, true);
  // Mostly a worker that is exiting: its exit status says more than the stdout's end.
  if (state == State::kBusy && !request->failed) Arm(Timer::kStdoutGone, request->kill_grace_ms);
}

// The leader has exited: SIGKILL what is left of its group, then reap it.
// SIGKILLs the group and the descendants that left it: all of its cgroup, or without one those
// KillEscapees finds. Only while the leader is unreaped. A worker lives long: pids may have
// wrapped since its spawn, so every process is looked at.
void WorkerPool::Worker::KillAll() {
  Signal(SIGKILL);
  if (cgroup.valid()) return TaskCgroups::Kill(cgroup);
  KillEscapees(pid, workdir, /*scan_all=*/true);
}

void WorkerPool::Worker::Reap() {
  KillAll();
  int status = 0;
  pid_t reaped_pid;
  do {
    reaped_pid = wait4(pid, &status, WNOHANG, &usage);
  } while (reaped_pid < 0 && errno == EINTR);
  if (reaped_pid == 0) return;  // not a zombie after all: keep polling
  if (reaped_pid > 0) wait_status = status;
  reaped = true;
  pid = -1;
  end_unix_ms = pool->clock_();
  CloseHandle(AsHandle(&exit_poll), &exit_poll_open);
  CloseHandle(AsHandle(&stdin_pipe), &stdin_open);
  Disarm();
  bool awaiting_answer = state == State::kBusy && !request->failed;
  if (stdout_open && awaiting_answer) {
    Arm(Timer::kDrain, request->kill_grace_ms);  // the response may still be in the pipe
  } else {
    CloseHandle(AsHandle(&stdout_pipe), &stdout_open);
  }
  MaybeEnd();
}

void WorkerPool::Worker::MaybeEnd() {
  if (reaped && !stdout_open && !ended) End();
}

// The worker is gone: it leaves the pool and a request still in flight fails.
void WorkerPool::Worker::End() {
  ended = true;
  CloseAll();
  TaskCgroups::Release(&cgroup);
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
  int status = wait_status.value_or(0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result.end_unix_ms = end_unix_ms;
  result.cpu_s = SecondsOf(usage.ru_utime) + SecondsOf(usage.ru_stime);
  result.max_rss_kb = usage.ru_maxrss;
  result.output.clear();
  std::string report = report_fd >= 0 ? ReadSpawnReport(report_fd) : std::string();
  std::string how = result.signal != 0 ? KilledBy(result.signal)
                                       : "exited with status " + std::to_string(result.exit_code);
  if (!wait_status) {
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

void WorkerPool::Worker::CloseHandle(uv_handle_t* handle, bool* open) {
  if (!*open) return;
  *open = false;
  uv_close(handle, OnClosed);
}

// The pidfd is closed with the worker: uv_close has stopped polling it.
void WorkerPool::Worker::CloseAll() {
  CloseHandle(AsHandle(&stdin_pipe), &stdin_open);
  CloseHandle(AsHandle(&stdout_pipe), &stdout_open);
  CloseHandle(AsHandle(&exit_poll), &exit_poll_open);
  CloseHandle(AsHandle(&timer), &timer_open);
}

void WorkerPool::Worker::Arm(Timer use, uint64_t ms) {
  timer_use = use;
  uv_timer_start(&timer, OnTimer, ms, 0);
}

void WorkerPool::Worker::Disarm() {
  timer_use = Timer::kOff;
  uv_timer_stop(&timer);
}

// Only while the leader is unreaped: until then its pid, the group's id, cannot be reused.
void WorkerPool::Worker::Signal(int sig) const {
  if (pid > 0) kill(-pid, sig);
}

WorkerPool::WorkerPool(uv_loop_t* loop, WorkerPoolOptions options,
                       std::function<int64_t()> unix_ms_clock)
    : loop_(loop),
      options_(std::move(options)),
      clock_(unix_ms_clock ? std::move(unix_ms_clock) : SystemUnixMs),
      later_timer_(new uv_timer_t),
      alive_(std::make_shared<bool>(true)),
      read_buffer_(new char[kReadBufferSize]) {
  uv_timer_init(loop_, later_timer_);  // cannot fail
  later_timer_->data = this;
}

WorkerPool::~WorkerPool() {
  *alive_ = false;
  std::vector<Worker*> all(idle_.begin(), idle_.end());
  for (auto& [handle, worker] : busy_) all.push_back(worker);
  all.insert(all.end(), stopping_.begin(), stopping_.end());
  for (Worker* worker : all) worker->Abandon();
  uv_close(AsHandle(later_timer_),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
}

bool WorkerPool::Prewarm(const std::string& key, const TaskLaunch& launch, uint64_t keep_alive_ms,
                         std::string* err) {
  Worker* worker = Spawn(key, launch, err);
  if (worker == nullptr) return false;
  worker->prewarmed = true;
  worker->keep_alive_ms = keep_alive_ms > 0 ? keep_alive_ms : options_.idle_timeout_ms;
  MakeIdle(worker);
  return true;
}

WorkerPool::Handle WorkerPool::Run(const std::string& key, const TaskLaunch& launch,
                                   nlohmann::json request, Done done) {
  Handle handle = next_handle_++;
  TaskResult result;
  result.start_unix_ms = clock_();
  ++stats_[key].requests;
  if (!request.is_object()) {
    FailLater(std::move(done), std::move(result), "the request is not a JSON object");
    return handle;
  }
  Worker* worker = TakeIdle(key);
  if (worker != nullptr) {
    result.cold = false;
    ++stats_[key].reused;
  } else {
    auto started = std::chrono::steady_clock::now();
    std::string err;
    int error = 0;
    worker = Spawn(key, launch, &err, &error);
    if (worker == nullptr) {
      result.retryable = IsResourceShortage(error);
      FailLater(std::move(done), std::move(result), std::move(err));
      return handle;
    }
    result.startup_ms = MsSince(started);
  }
  request["id"] = handle;
  auto next = std::make_unique<Worker::Request>();
  next->handle = handle;
  next->done = std::move(done);
  next->timeout_ms = launch.timeout_ms;
  next->max_output_bytes = launch.max_output_bytes;
  next->kill_grace_ms = launch.kill_grace_ms;
  next->result = std::move(result);
  busy_.emplace(handle, worker);
  worker->Send(std::move(next), DumpJson(request) + "\n");
  return handle;
}

void WorkerPool::Cancel(Handle handle) {
  auto it = busy_.find(handle);
  if (it != busy_.end()) it->second->Fail(TaskResult::Kind::kCancelled, "", false);
}

size_t WorkerPool::StopIdle(const std::string& key) {
  std::vector<Worker*> matching;
  for (Worker* worker : idle_) {
    if (key.empty() || worker->key == key) matching.push_back(worker);
  }
  for (Worker* worker : matching) StopWorker(worker, false);
  return matching.size();
}

size_t WorkerPool::idle(const std::string& key) const {
  size_t count = 0;
  for (const Worker* worker : idle_) count += worker->key == key ? 1u : 0u;
  return count;
}

nlohmann::json WorkerPool::Stats() const {
  Json stats = Json::object();
  for (const auto& [key, counts] : stats_) {
    size_t busy_count = 0;
    for (const auto& [handle, worker] : busy_) busy_count += worker->key == key ? 1u : 0u;
    stats[key] = {{"idle", idle(key)},
                  {"busy", busy_count},
                  {"spawned", counts.spawned},
                  {"reused", counts.reused},
                  {"stopped_idle", counts.stopped_idle},
                  {"evicted", counts.evicted},
                  {"requests", counts.requests}};
  }
  return stats;
}

// A new worker for `key`, not yet in any state's container; nullptr with `*err` (and, if
// `error` is given, the errno behind it, 0 if none) if it could not be spawned or watched (then
// nothing of it is left).
WorkerPool::Worker* WorkerPool::Spawn(const std::string& key, const TaskLaunch& launch,
                                      std::string* err, int* error) {
  TaskLaunch worker_launch = launch;
  worker_launch.stdin_data.clear();
  worker_launch.stdin_file.clear();
  worker_launch.output_file.clear();
  worker_launch.cpu_limit_s = 0;
  SpawnedProcess process;
  TaskCgroups::Group cgroup;
  if (!SpawnInOwnCgroup(options_.cgroups, worker_launch, attributes_, options_.exec_helper,
                        &process, &cgroup, err)) {
    if (error) *error = process.error;
    return nullptr;
  }
  auto* worker = new Worker(this, key);
  worker->workdir = worker_launch.workdir;
  worker->cgroup = std::move(cgroup);
  int rc = worker->Watch(process);
  if (rc < 0) {
    worker->Abandon();
    *err = std::string("cannot watch the worker's process: ") + uv_strerror(rc);
    return nullptr;
  }
  worker->keep_alive_ms = options_.idle_timeout_ms;
  ++stats_[key].spawned;
  return worker;
}

// The most recently used idle worker of `key`, now out of idle_, or nullptr.
WorkerPool::Worker* WorkerPool::TakeIdle(const std::string& key) {
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    Worker* worker = *it;
    if (worker->key != key) continue;
    idle_.erase(std::next(it).base());
    worker->Disarm();
    return worker;
  }
  return nullptr;
}

// `worker` (just spawned, or done with a request) waits for the next; the least recently
// used idle worker beyond max_idle is stopped.
void WorkerPool::MakeIdle(Worker* worker) {
  worker->state = Worker::State::kIdle;
  worker->idle_since = std::chrono::steady_clock::now();
  if (worker->used) worker->keep_alive_ms = options_.idle_timeout_ms;
  idle_.push_back(worker);
  if (worker->keep_alive_ms > 0) worker->Arm(Worker::Timer::kKeepAlive, worker->keep_alive_ms);
  if (idle_.size() > options_.max_idle) ExpireIdle(idle_.front(), true);
}

// Stops the idle `worker` for its keep-alive or max_idle, and says so through OnIdleStopped.
void WorkerPool::ExpireIdle(Worker* worker, bool evicted) {
  KeyStats& counts = stats_[worker->key];
  ++(evicted ? counts.evicted : counts.stopped_idle);
  bool never_used = worker->prewarmed && !worker->used;
  double idle_ms = MsSince(worker->idle_since);
  uint64_t rss_kb = RssKb(worker->pid);
  StopWorker(worker, false);
  Later([this, key = worker->key, never_used, idle_ms, rss_kb] {
    if (idle_stopped_) idle_stopped_(key, never_used, idle_ms, rss_kb);
  });
}

// Moves the idle `worker` to stopping: SIGKILL `at_once` (it misbehaved), else its stdin's
// end and SIGTERM, SIGKILL after the grace period.
void WorkerPool::StopWorker(Worker* worker, bool at_once) {
  idle_.remove(worker);
  worker->state = Worker::State::kStopping;
  stopping_.insert(worker);
  if (at_once) {
    worker->Disarm();
    worker->Signal(SIGKILL);
  } else {
    worker->Terminate(options_.kill_grace_ms);
  }
}

// `worker` ended: it is in no container any more.
void WorkerPool::Forget(Worker* worker) {
  idle_.remove(worker);
  stopping_.erase(worker);
  if (worker->request) busy_.erase(worker->request->handle);
}

// Reports a request that never reached a worker as kSpawnFailed, on the next iteration.
void WorkerPool::FailLater(Done done, TaskResult result, std::string error) {
  result.kind = Kind::kSpawnFailed;
  result.error = std::move(error);
  result.end_unix_ms = clock_();
  Later([done = std::move(done), result = std::move(result)]() mutable {
    Done callback = std::move(done);
    callback(std::move(result));
  });
}

void WorkerPool::Later(std::function<void()> call) {
  later_.push_back(std::move(call));
  uv_timer_start(later_timer_, OnLaterTimer, 0, 0);
}

// Each call may destroy the pool; the rest are then dropped.
void WorkerPool::OnLaterTimer(uv_timer_t* timer) {
  auto* pool = static_cast<WorkerPool*>(timer->data);
  std::vector<std::function<void()>> due = std::move(pool->later_);
  pool->later_.clear();
  std::shared_ptr<bool> alive = pool->alive_;
  for (auto& call : due) {
    if (!*alive) return;
    call();
  }
}

}  // namespace chainctl::daemon
