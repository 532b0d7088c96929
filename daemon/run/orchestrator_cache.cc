// The task cache in a run (orchestrator.h, "The task cache"; DESIGN.md §4 "Cache"): the key of a
// task made and looked up on the thread pool before its first attempt, a hit ending it `cached`
// with the stored output, out/ files and project outputs, a miss running it and storing what it
// produced. The loop only decides; hashing, copying and checking run on the thread pool.
#include <filesystem>
#include <memory>

#include "common/json_text.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/run/task_key.h"
#include "daemon/store/task_cache.h"
#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {

using nlohmann::json;

// What a lookup found, made on the thread pool and read on the loop.
struct Orchestrator::CacheLookup {
  bool keyed = false;  // the key was made; else `reason` says why not
  Hash128 key;
  json parts;
  TaskCache::Lookup lookup = TaskCache::Lookup::kMiss;
  json output;
  std::string reason;  // why it ran: ExplainMiss, "--no-cache", a corrupt entry, an error
};

std::string Orchestrator::CacheRefusal(const Run& run, int i) const {
  if (!cache_ || !memo_) return "chaind runs without a task cache";
  return WhyNotCacheable(run.spec(i));
}

void Orchestrator::LookUpCache(Run& run, int i) {
  Run::Task& t = run.task(i);
  t.cache_looked_up = true;
  if (std::string why = CacheRefusal(run, i); !why.empty()) {
    t.cache = {{"hit", false}, {"reason", why}};
    return Launch(run, i);
  }
  std::string err;
  int error_number = 0;
  // A failure here is Launch's to report (it prepares the input again and fails the task).
  if (!PrepareInput(run, i, &err, &error_number)) return Launch(run, i);
  t.input_ready = true;
  t.started_ms = clock_();
  const TaskSpec& spec = run.spec(i);
  auto request = std::make_shared<TaskKeyRequest>();
  request->spec = spec;
  request->input_json = DumpJson(t.input);
  for (const std::string& dep : spec.dependencies) {
    if (run.task(run.plan->chain.FindTask(dep)).has_files) {
      request->dep_dirs.push_back(run.dir + "/" + dep + "/out");
    }
  }
  TaskCache::Places places{run.dir + "/" + spec.task_id + "/out", spec.source_dir};
  auto found = std::make_shared<CacheLookup>();
  QueueWork(
      loop_,
      [cache = cache_, memo = memo_, request, places, found, restore = !run.no_cache,
       last = TaskCache::LastName(run.plan->version.chain_id, spec.task_id)] {
        TaskKeyParts parts;
        std::string error;
        if (!ComputeTaskKey(*request, memo, &parts, &error)) {
          found->reason = "its key could not be made: " + error;
          return;
        }
        found->keyed = true;
        found->key = CacheKey(parts);
        found->parts = DescribeKeyParts(parts);
        json info;
        std::string why;
        if (restore)
          found->lookup = cache->Restore(found->key, places, &found->output, &info, &why);
        if (!restore) {
          found->reason = "--no-cache";
        } else if (found->lookup == TaskCache::Lookup::kCorrupt) {
          found->reason = "its cache entry was corrupt and was removed (" + why + ")";
        } else if (found->lookup == TaskCache::Lookup::kMiss) {
          found->reason = ExplainMiss(cache->ReadLast(last).value_or(nullptr), parts);
          if (!why.empty()) found->reason += " (" + why + ")";
        }
      },
      [this, n = run.n, i, found] { CacheLooked(n, i, *found); });
}

void Orchestrator::CacheLooked(uint64_t n, int i, CacheLookup& found) {
  auto it = runs_.find(n);
  if (it == runs_.end()) return;
  Run& run = *it->second;
  // Cancelled or stopped meanwhile: StopRun decided the task (it was ready, not running).
  if (run.ended || run.scheduler->state(i) != TaskState::kReady) return;
  Run::Task& t = run.task(i);
  bool hit = found.keyed && found.lookup == TaskCache::Lookup::kHit;
  if (hit) {
    const JsonSchema* schema = run.plan->output_schemas[Run::Index(i)].get();
    if (schema && !schema->Validate(found.output).empty()) {
      // Not reached with keys of this chaind (the key covers the schema): an entry of another
      // build's. The task runs, into an empty out/ (rare: on the loop).
      hit = false;
      found.reason = "the cached output does not fit the output_schema";
      std::error_code ec;
      const std::string out = run.dir + "/" + run.spec(i).task_id + "/out";
      std::filesystem::remove_all(out, ec);
      std::filesystem::create_directories(out, ec);
    }
  }
  t.cache = {{"hit", hit}, {"reason", hit ? "cached" : found.reason}};
  if (found.keyed) t.cache["key"] = found.key.Hex();
  if (!found.keyed) Log(LogLevel::kWarning, run.spec(i).task_id + ": " + found.reason);
  if (!hit) {
    if (found.keyed) {
      t.cache_key = found.key;
      t.cache_parts = std::move(found.parts);
    }
    queue_.insert({run.scheduler->Priority(i), ++queue_seq_, run.n, i});
    return Dispatch();
  }
  run.scheduler->Started(i);
  if (prefetcher_) {  // its run goes on past it: the forecast of what comes next moves on
    prefetcher_->TaskStarted(run.id, run.plan->version.chain_id, run.chain(), i);
  }
  RecordCached(run, i);
  KeepOutput(run, i, std::move(found.output));
  FinishTask(run, i, TaskState::kCached, "");
  Dispatch();  // its dependents, made ready
}

void Orchestrator::RecordCached(const Run& run, int i) {
  const Run::Task& t = run.tasks[Run::Index(i)];
  HistoryRecord h = HistoryOf(run, i);
  h.start_unix_ms = t.started_ms;
  h.end_unix_ms = std::max(clock_(), t.started_ms);
  h.status = "succeeded";
  h.cached = true;
  AppendHistory(h);
}

void Orchestrator::StoreResult(Run& run, int i, json output) {
  Run::Task& t = run.task(i);
  const TaskSpec& spec = run.spec(i);
  Hash128 key = *t.cache_key;
  t.cache_key.reset();  // TaskSucceeded, called again once stored, finishes the task
  TaskCache::Places places{run.dir + "/" + spec.task_id + "/out", spec.source_dir};
  auto shared = std::make_shared<json>(std::move(output));
  QueueWork(
      loop_,
      [cache = cache_, key, places, outputs = spec.outputs, shared, parts = t.cache_parts,
       last = TaskCache::LastName(run.plan->version.chain_id, spec.task_id),
       task_id = spec.task_id] {
        std::string err;
        if (!cache->Store(key, places, outputs, *shared, {{"task_id", task_id}}, &err) ||
            !cache->RecordLast(last, parts, &err)) {
          Log(LogLevel::kWarning, "task cache: " + task_id + ": " + err);
        }
      },
      [this, n = run.n, i, shared] {
        auto it = runs_.find(n);
        if (it != runs_.end()) TaskSucceeded(*it->second, i, std::move(*shared));
        Dispatch();  // its dependents, made ready
      });
}

}  // namespace chainctl::daemon
