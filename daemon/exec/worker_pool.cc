#include "daemon/exec/worker_pool.h"

#include <signal.h>

#include <chrono>
#include <string>
#include <utility>

#include "common/json_text.h"
#include "daemon/exec/clocks.h"
#include "daemon/exec/pool_worker.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;
using Json = nlohmann::json;

uv_handle_t* AsHandle(void* handle) { return static_cast<uv_handle_t*>(handle); }

}  // namespace

WorkerPool::WorkerPool(uv_loop_t* loop, WorkerPoolOptions options,
                       std::function<int64_t()> unix_ms_clock)
    : loop_(loop),
      options_(std::move(options)),
      clock_(unix_ms_clock ? std::move(unix_ms_clock) : SystemUnixMs),
      later_timer_(new uv_timer_t),
      alive_(std::make_shared<bool>(true)),
      read_buffer_(new char[WatchedProcess::kReadBufferSize]) {
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
  auto* worker = new Worker(this, key, worker_launch.workdir);
  int rc = worker->Watch(process, std::move(cgroup));
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
  uint64_t rss_kb = worker->ResidentKb();
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
    worker->SignalGroup(SIGKILL);
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
