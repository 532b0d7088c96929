// From an attempt's result to the end of its task and run (orchestrator.h): OnResult checks the
// output and records the attempt in the history, then the task succeeds, is retried (after its
// backoff, or short of resources) or ends; FinishTask tells the scheduler and MaybeFinishRun
// ends the run once every task is decided, telling clients only once its end is stored.
#include <signal.h>

#include <algorithm>
#include <random>

#include "common/units.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/run/task_io.h"
#include "daemon/store/run_keys.h"

namespace chainctl::daemon {

using nlohmann::json;
using orchestrator_detail::CloseTimer;
using orchestrator_detail::TimerTarget;

namespace {

// Attempts short of resources retried per task while no other task of chaind runs (while one
// does, its end frees descriptors, processes and memory): with the default 1 s backoff, about
// 10 s of a shortage nothing of chaind's will end.
constexpr int kMaxShortRetries = 10;

// The cause of a failed attempt, for the history: "exit 3", "signal 9", "timeout", ...
std::string CauseOf(const TaskResult& r) {
  switch (r.kind) {
    case TaskResult::Kind::kExited:
      return "exit " + std::to_string(r.exit_code);
    case TaskResult::Kind::kSignaled:
      return "signal " + std::to_string(r.signal) + (r.signal == SIGXCPU ? " (cpu limit)" : "");
    case TaskResult::Kind::kTimedOut:
      return "timeout";
    case TaskResult::Kind::kOutputTooLarge:
      return "max_output";
    case TaskResult::Kind::kSpawnFailed:
      return "spawn";
    case TaskResult::Kind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

uint64_t BackoffMs(const RetryPolicy& retry, int failed_attempts, std::mt19937_64& rng) {
  double ms = static_cast<double>(retry.initial_backoff.count());
  for (int i = 1; i < failed_attempts; ++i) ms *= retry.multiplier;
  ms = std::min(ms, static_cast<double>(retry.max_backoff.count()));
  // Jitter: 75% to 125% of the backoff, so retries of many runs do not move in lockstep.
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return static_cast<uint64_t>(ms * jitter(rng));
}

std::mt19937_64& Rng() {
  static std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

// Whether an attempt succeeded: it ended well, and what it printed is its output (JSON, or
// text when it has no output_schema) and fits `schema` (null: accepts anything). Else false
// with *error: the attempt's own error, or what is wrong with its output.
bool CheckOutput(const TaskResult& result, const JsonSchema* schema, json* output,
                 std::string* error) {
  *error = result.error;
  if (!result.ok()) return false;
  if (!ParseTaskOutput(result.output, schema == nullptr, output, error)) return false;
  if (!schema) return true;
  std::vector<JsonSchema::Violation> violations = schema->Validate(*output);
  if (violations.empty()) return true;
  *error = "output_schema: " + DescribeViolations(violations);
  return false;
}

}  // namespace

void Orchestrator::OnResult(uint64_t n, int i, int attempt, TaskResult result) {
  --running_;
  auto it = runs_.find(n);
  if (it == runs_.end()) return Dispatch();
  Run& run = *it->second;
  const TaskSpec& spec = run.spec(i);
  Run::Task& t = run.task(i);
  t.handle = 0;
  t.worker_request = 0;
  t.process = nullptr;

  std::string error;
  json output;
  bool ok = CheckOutput(result, run.plan->output_schemas[Run::Index(i)].get(), &output, &error);
  bool cancelled = result.kind == TaskResult::Kind::kCancelled;
  RecordAttempt(run, i, attempt, result, ok, error);

  if (ok) {
    TaskSucceeded(run, i, std::move(output));
  } else if (result.retryable && !cancelled && RetryShortOfResources(run, i, error)) {
    // The spawn found no descriptor, process or memory free (EMFILE, EAGAIN, ...): its record
    // stays.
  } else if (cancelled || run.cancelled || run.timed_out ||
             attempt - t.first_attempt + 1 >= spec.retry.max_attempts) {
    FinishTask(run, i, cancelled ? TaskState::kCancelled : TaskState::kFailed, error);
  } else {
    Retry(run, i, error);
  }
  Dispatch();
}

void Orchestrator::RecordAttempt(const Run& run, int i, int attempt, const TaskResult& result,
                                 bool ok, const std::string& error) {
  const Run::Task& t = run.tasks[Run::Index(i)];
  HistoryRecord h = HistoryOf(run, i);
  h.attempt = attempt;
  h.start_unix_ms = result.start_unix_ms;
  h.end_unix_ms = std::max(result.end_unix_ms, result.start_unix_ms);
  bool cancelled = result.kind == TaskResult::Kind::kCancelled;
  h.status = ok ? "succeeded" : cancelled ? "cancelled" : "failed";
  if (!ok) h.cause = result.ok() ? error : CauseOf(result);
  h.cold = result.cold;
  h.startup_ms = result.startup_ms;
  h.cpu_s = result.cpu_s;
  h.max_rss_kb = result.max_rss_kb;
  h.bytes_in = result.bytes_in;
  h.bytes_out = result.bytes_out;
  if (t.bytes_staged) h.bytes_staged = t.bytes_staged;
  AppendHistory(h);
}

HistoryRecord Orchestrator::HistoryOf(const Run& run, int i) const {
  HistoryRecord h;
  h.run_id = run.id;
  h.chain_id = run.plan->version.chain_id;
  h.task_id = run.spec(i).task_id;
  h.chain_version = run.plan->version.version;
  h.task_version = run.plan->task_versions[Run::Index(i)];
  return h;
}

void Orchestrator::AppendHistory(const HistoryRecord& h) {
  if (attempt_recorded_) attempt_recorded_(h);
  History* history = history_;
  writer_->Add([history, h](WriteTxn& txn, std::string* err) {
    std::vector<HistoryRecord> records{h};
    return history->Append(txn, &records, err);
  });
}

void Orchestrator::TaskSucceeded(Run& run, int i, json output) {
  if (run.task(i).cache_key && cache_) return StoreResult(run, i, std::move(output));
  KeepOutput(run, i, std::move(output));
  FinishTask(run, i, TaskState::kSucceeded, "");
}

void Orchestrator::KeepOutput(Run& run, int i, json output) {
  const std::string& task_id = run.spec(i).task_id;
  Run::Task& t = run.task(i);
  t.has_files = HasEntries(run.dir + "/" + task_id + "/out");
  // output: UTF-8 and not too deep, checked by ParseTaskOutput (or the cache's checks).
  writer_->Put(Db::kRuns, RunOutputKey(run.n, task_id), EncodeValue(1, output.dump()));
  t.output = std::move(output);
}

bool Orchestrator::RetryShortOfResources(Run& run, int i, const std::string& error) {
  Run::Task& t = run.task(i);
  if (run.cancelled || run.timed_out) return false;
  if (running_ == 0 && ++t.short_retries > kMaxShortRetries) return false;
  ++t.first_attempt;  // the next attempt starts the count of retry.max_attempts again
  Retry(run, i, error + " (retried: chaind was short of resources)");
  return true;
}

void Orchestrator::Retry(Run& run, int i, const std::string& error) {
  Run::Task& t = run.task(i);
  uint64_t backoff = BackoffMs(run.spec(i).retry, t.attempts - t.first_attempt + 1, Rng());
  Emit(run, {{"type", "task_retrying"},
             {"task_id", run.spec(i).task_id},
             {"attempt", t.attempts},
             {"error", error},
             {"backoff_ms", backoff}});
  t.error = error;
  SaveTask(run, i);
  t.retry = new uv_timer_t;
  uv_timer_init(loop_, t.retry);
  t.retry->data = new TimerTarget{this, run.n, i};
  uv_timer_start(
      t.retry,
      [](uv_timer_t* timer) {
        TimerTarget target = *static_cast<TimerTarget*>(timer->data);
        CloseTimer(timer);
        auto it = target.self->runs_.find(target.n);
        if (it == target.self->runs_.end()) return;
        Run& waiting = *it->second;
        waiting.task(target.task).retry = nullptr;
        target.self->queue_.insert({waiting.scheduler->Priority(target.task),
                                    ++target.self->queue_seq_, waiting.n, target.task});
        target.self->Dispatch();
      },
      backoff, 0);
}

void Orchestrator::FinishTask(Run& run, int i, TaskState state, const std::string& error) {
  Run::Task& t = run.task(i);
  if (t.retry) {
    CloseTimer(t.retry);
    t.retry = nullptr;
  }
  t.ended_ms = clock_();
  t.error = error;
  run.scheduler->Finished(i, state);
  json event = {
      {"type", "task_finished"}, {"task_id", run.spec(i).task_id}, {"state", ToString(state)}};
  if (t.attempts > 0) {
    event["attempt"] = t.attempts;
    event["duration_ms"] = t.ended_ms - t.started_ms;
  }
  if (!error.empty()) event["error"] = error;
  if (!t.cache.is_null()) event["cache"] = t.cache;
  Emit(run, std::move(event));
  std::vector<int> decided = EmitDecided(run, t.ended_ms);
  SaveTask(run, i);
  for (int d : decided) SaveTask(run, d);
  SaveRun(run);
  Pump(run);
  MaybeFinishRun(run);
}

std::vector<int> Orchestrator::EmitDecided(Run& run, int64_t ended_ms) {
  std::vector<int> decided = run.scheduler->decided();
  for (int d : decided) {
    run.task(d).ended_ms = ended_ms;
    Emit(run, {{"type", "task_finished"},
               {"task_id", run.spec(d).task_id},
               {"state", ToString(run.scheduler->state(d))}});
  }
  return decided;
}

void Orchestrator::MaybeFinishRun(Run& run) {
  if (run.ended || !run.scheduler->Done()) return;
  run.ended = true;
  run.ended_ms = clock_();
  if (run.deadline) {
    CloseTimer(run.deadline);
    run.deadline = nullptr;
  }
  DecideRunStatus(run);
  json event = {{"type", "run_finished"},
                {"status", run.status},
                {"duration_ms", run.ended_ms - run.created_ms}};
  if (!run.error.empty()) event["error"] = run.error;
  if (run.status == "succeeded") event["output"] = RunSummary(run)["output"];
  run.end_event = run.events.size();
  Emit(run, std::move(event));
  SaveRun(run);
  SendEvents(run);
  if (prefetcher_ && !stopping_) {
    prefetcher_->RunEnded(run.id, run.plan->version.chain_id, run.created_ms);
  }
  uint64_t n = run.n;
  // The end is acknowledged once stored (a failing store retries until it is); `ok` is false
  // only when chaind stops while the store fails: then the end is never told.
  writer_->Sync([this, n](bool ok, const std::string&) { RunEndStored(n, ok); });
}

void Orchestrator::DecideRunStatus(Run& run) {
  const Plan& plan = *run.plan;
  if (stopping_) {
    run.status = "interrupted";
    run.error = "chaind stopped while the run was running";
  } else if (run.timed_out) {
    run.status = "failed";
    run.error = "the run went over its timeout of " + FormatDuration(*plan.chain.timeout) +
                " (the chain's timeout)";
  } else if (run.cancelled) {
    run.status = "cancelled";
    run.error = "cancelled";
  } else if (run.scheduler->Succeeded()) {
    run.status = "succeeded";
  } else {
    run.status = "failed";
    for (size_t i = 0; i < run.tasks.size(); ++i) {
      if (run.scheduler->state(static_cast<int>(i)) == TaskState::kFailed) {
        run.error = "task " + plan.chain.tasks[i].task_id + " failed: " + run.tasks[i].error;
        break;
      }
    }
  }
}

void Orchestrator::RunEndStored(uint64_t n, bool ok) {
  Run& stored = *runs_.at(n);
  stored.end_stored = ok;
  if (ok) SendEvents(stored);
  std::map<uint64_t, Follower> followers;
  followers.swap(stored.followers);
  for (auto& [id, follower] : followers) follower.end();
  int64_t ended_ms = stored.ended_ms;
  runs_.erase(n);
  RunDirEnded(n);
  RunRecordEnded(n, ended_ms);
  if (runs_.empty() && idle_) idle_();
  if (stopping_ && runs_.empty() && stopped_) {
    auto done = std::move(stopped_);
    stopped_ = nullptr;
    writer_->WhenIdle(std::move(done));
  }
}

}  // namespace chainctl::daemon
