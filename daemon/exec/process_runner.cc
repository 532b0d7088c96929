#include "daemon/exec/process_runner.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "daemon/exec/clocks.h"
#include "daemon/exec/orphans.h"
#include "daemon/exec/process_attempt.h"
#include "daemon/util/log_bound.h"

namespace chainctl::daemon {
namespace {

uv_handle_t* AsHandle(void* handle) { return static_cast<uv_handle_t*>(handle); }

}  // namespace

ProcessRunner::ProcessRunner(uv_loop_t* loop, UnixMsClock clock, std::string exec_helper,
                             TaskCgroups* cgroups)
    : loop_(loop),
      clock_(clock ? std::move(clock) : SystemUnixMs),
      exec_helper_(std::move(exec_helper)),
      cgroups_(cgroups),
      read_buffer_(new char[WatchedProcess::kReadBufferSize]) {}

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
    if (!attempt->exited()) BoundLog(attempt->launch.log_path, attempt->launch.max_log_bytes);
  }
}

TaskRunner::Handle ProcessRunner::Start(TaskLaunch launch, Done done) {
  auto started = std::chrono::steady_clock::now();
  if (launch.warm != 0) {
    Handle taken = TakeWarm(&launch, &done);
    if (taken != 0) return taken;
  }
  ++running_;
  Handle handle = next_handle_++;
  auto* attempt = new Attempt(this, handle, std::move(launch), std::move(done), started);
  attempts_.emplace(handle, attempt);
  WatchLogs();
  attempt->result.start_unix_ms = clock_();
  SpawnedProcess process;
  TaskCgroups::Group cgroup;
  std::string err;
  if (!SpawnInOwnCgroup(cgroups_, attempt->launch, attributes_, exec_helper_, &process, &cgroup,
                        &err)) {
    attempt->result.retryable = IsResourceShortage(process.error);
    attempt->Fail(std::move(err));
    return handle;
  }
  attempt->result.startup_ms = MsSince(started);
  int rc = attempt->Begin(process, std::move(cgroup));
  if (rc < 0) attempt->Fail(std::string("cannot watch the task's process: ") + uv_strerror(rc));
  return handle;
}

nlohmann::json ProcessRunner::Locate(Handle handle) const {
  auto it = attempts_.find(handle);
  if (it == attempts_.end() || it->second->pid() <= 0) return nullptr;
  std::optional<ProcessStamp> stamp = StampOf(it->second->pid());
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
  if (it != attempts_.end()) it->second->Stop(TaskResult::Kind::kCancelled);
}

}  // namespace chainctl::daemon
