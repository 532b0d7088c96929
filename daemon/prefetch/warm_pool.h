// What the prefetcher keeps warm (DESIGN.md §5 "Prewarm levels"): prewarmed processes (kSpawn,
// through TaskRunner::Prewarm, in their own folder DIR/N, also their $CHAIN_WORKDIR, so the
// orphan scan finds them after a crash), idle workers it started (kWorker, WorkerPool::Prewarm)
// and staged inputs (kStage: inputs.files staged into DIR/N/files on the thread pool). It starts
// and stops them as told (the planner decides), hands them to starts, and counts what they gave
// in the FigureBook.
//
// Loop thread only. `changed` is called (on the loop, never from inside a call of this class)
// when something happened that a plan should see: a prewarm became ready, ended by itself, or
// finished staging.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "daemon/exec/task_runner.h"
#include "daemon/exec/worker_pool.h"
#include "daemon/prefetch/figures.h"
#include "daemon/prefetch/input_stager.h"
#include "daemon/prefetch/planner.h"
#include "daemon/store/registry.h"  // UnixMsClock

namespace chainctl::daemon {

struct WarmPoolHooks {
  // The launch of a prewarmed process of `task` in `dir` (its workdir, log and context file).
  std::function<TaskLaunch(const TaskSpec& task, const std::string& dir)> warm_launch;
  // The launch of a mode: worker process of `task`.
  std::function<TaskLaunch(const std::string& chain_id, const TaskSpec& task)> worker_launch;
  std::function<void()> changed;
};

class WarmPool {
 public:
  // Nothing is owned; `workers` and `stager` may be null. `dir` exists.
  WarmPool(uv_loop_t* loop, std::string dir, WarmPoolHooks hooks, TaskRunner* runner,
           WorkerPool* workers, InputStager* stager, FigureBook* figures, UnixMsClock clock);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  // Starts what `d` wants; false (logged) if it cannot, which a plan will not retry at once.
  bool Start(const Desire& d);
  // Stops an entry (its process, worker or staged folder); `wasted` counts it as waste.
  void Stop(uint64_t id, bool wasted);
  void StopAll();
  void Extend(uint64_t id, int64_t until_ms);
  void Score(uint64_t id, double score);

  // The entries as the planner sees them.
  std::vector<WarmEntry> Entries() const;
  size_t processes() const;
  uint64_t memory() const;
  uint64_t staged_bytes() const;
  size_t idle_workers(const std::string& key) const;  // the pool's idle workers not ours

  // A start of a task whose key is `key`: its warm process if one is alive (a hit: the entry
  // leaves the pool), else 0 (a miss, counted if `count_miss`: the task prewarms). *context_file:
  // where the process reads its run context.
  TaskRunner::Handle TakeProcess(const std::string& key, bool count_miss,
                                 std::string* context_file);
  // A mode: worker request served: a hit or a miss, and its time (see Prefetcher).
  void WorkerServed(const std::string& key, bool cold, double duration_ms);
  // Makes `dest` hold the task's inputs.files: moved from a fresh staged entry of `key` (a hit),
  // else staged now (a miss, counted if `count_miss`: the task stages ahead), until `cancelled`.
  // On the thread pool; `done` on the loop.
  void StageInputs(const std::string& key, const std::string& chain_id, const TaskSpec& task,
                   const std::string& dest, bool count_miss, StageCancelled cancelled,
                   std::function<void(StageResult)> done);

  nlohmann::json Json() const;  // the pool, for GET /prefetch

 private:
  struct Entry;
  void ProcessEnded(uint64_t id, TaskResult cost);
  void Ready(uint64_t id);
  void StartStaging(Entry& entry, const TaskSpec& task);
  void RemoveTaken();

  uv_loop_t* loop_;
  std::string dir_;
  WarmPoolHooks hooks_;
  TaskRunner* runner_;
  WorkerPool* workers_;
  InputStager* stager_;
  FigureBook* figures_;
  UnixMsClock clock_;
  std::map<uint64_t, std::unique_ptr<Entry>> entries_;
  uint64_t next_id_ = 1;
  // Prewarmed processes taken by an attempt, and their folders, removed once they have ended.
  std::vector<std::pair<TaskRunner::Handle, std::string>> taken_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace chainctl::daemon
