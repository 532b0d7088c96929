// The prefetch engine (DESIGN.md §5): from the model's predictions, it prewarms the tasks
// expected next so that, when they really start, their start-up is already done.
//
// Watching. The orchestrator tells it each task's first start in a run and each run's end. A
// run's frontier and model context are kept as it goes (run_forecast.h), so an event costs what
// it changed: a run of a chain with nothing to prewarm costs a map look-up per start.
//
// Planning, at most once per loop turn (events are coalesced): the runs that had a start since
// the last plan are forecast again (the first `max_candidates` tasks of their frontier, along
// the most likely path `lookahead` starts deep); the chains expected next (PredictChains after
// the recent runs' chains, needed at the previous run's start + the early gap between runs) when
// a run starts or ends; the others' forecasts are kept until the model is swapped. Each forecast
// that can gain (FigureBook::Gains: a measured start-up of at least 10 ms, or none measured yet)
// becomes a desire: `prewarm: spawn` (not for GPU tasks) its process, mode: worker an idle
// worker, inputs.files their staging; scored P × start-up saved − cost_ms_per_mb_s × MB × the
// time it is expected to sit unused ((1 − P) × keep-alive + margin), due at need − start-up −
// margin. The planner (planner.h) decides from the desires, the pool and the budgets what to stop
// and start; the pool (warm_pool.h) does it. Budgets: warm processes (a count cap: they cost
// memory, not CPU, while they wait), their memory (25% of RAM), staged bytes, and the prewarms
// starting up at once (one per core that no running task uses, at least one). A plan also runs
// when a prewarm becomes ready or ends, a staging finishes, and at the planner's wake time.
//
// A prewarmed process never gets input unless a run of its task takes it, and nothing
// run-specific is in its environment: $CHAIN_CONTEXT_FILE names the file that the taker writes
// the run's context to before its input.
//
// Loop thread only. Shutdown (or the destructor) stops every warm process.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/chain/chain.h"
#include "daemon/exec/task_runner.h"
#include "daemon/exec/worker_pool.h"
#include "daemon/prefetch/chain_view.h"
#include "daemon/prefetch/figures.h"
#include "daemon/prefetch/input_stager.h"
#include "daemon/prefetch/planner.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/prefetch/run_forecast.h"
#include "daemon/prefetch/warm_pool.h"

namespace chainctl::daemon {

struct PrefetchOptions {
  bool enabled = true;            // chaind --no-prefetch: false
  std::string dir;                // the prewarm folders (made if missing)
  size_t max_warm = 0;            // warm processes at once; 0: kDefaultMaxWarm
  uint64_t max_memory_bytes = 0;  // their memory; 0: 25% of RAM
  uint64_t max_staged_bytes = 1ull << 30;
  size_t cores = 0;           // for the prewarms starting up at once; 0: the machine's
  uint64_t ttl_ms = 600'000;  // the longest keep-alive
  uint64_t margin_ms = 50;    // started this much before start-up + need
  double min_probability = 0.05;
  double cost_ms_per_mb_s = 0.01;  // what holding 1 MB warm for 1 s costs, in ms of start-up
  size_t lookahead = 8;            // starts ahead along a run's most likely path
  size_t max_candidates = 32;      // frontier tasks a forecast looks at, per start ahead
  // Where what was measured of each task's prewarms is kept across restarts (figures.h): read
  // by Open, written by Shutdown. Empty: not kept. Of the tasks seen last, this many.
  std::string measurements_file;
  size_t measurements_kept = 1000;

  static constexpr size_t kDefaultMaxWarm = 32;
};

// What the prefetcher needs of the orchestrator.
struct PrefetchHooks {
  // The latest definition of a chain; null if there is none.
  std::function<std::shared_ptr<const Chain>(const std::string& chain_id)> latest_chain;
  // The launch a prewarmed process of `task` gets (argv, env, limits; nothing run-specific),
  // in `dir`: its workdir, log and context file are there.
  std::function<TaskLaunch(const TaskSpec& task, const std::string& dir)> warm_launch;
  // The launch of a mode: worker process of `task` (the same one the orchestrator uses).
  std::function<TaskLaunch(const std::string& chain_id, const TaskSpec& task)> worker_launch;
  // Whether a task with caching on is expected to be restored from the task cache
  // (cache_forecast.h): its process is not prewarmed then, nor while that is not known yet
  // (nullopt; the answer's arrival wakes the prefetcher). Null: none is expected to be.
  std::function<std::optional<bool>(const std::string& chain_id, const TaskSpec& task)>
      expected_hit;
};

// The planning work done, counted (GET /prefetch "planning"; the tests that bound it).
struct PlanningWork {
  uint64_t events = 0;     // task starts and run ends seen
  uint64_t plans = 0;      // plans made (events coalesced)
  uint64_t forecasts = 0;  // runs and expected chains forecast
  ForecastWork model;      // model calls and candidates scored
  double deciding_s = 0;   // time in plans deciding (forecasts, desires, the planner)
  double doing_s = 0;      // time in plans doing it (starting and stopping prewarms)
};

class Prefetcher {
 public:
  // Nothing is owned; all must outlive the prefetcher. `workers` and `stager` may be null.
  Prefetcher(uv_loop_t* loop, PrefetchOptions options, PrefetchHooks hooks,
             PredictionService* predictions, TaskRunner* runner, WorkerPool* workers,
             InputStager* stager, UnixMsClock clock = RealUnixMs);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Makes the prewarm folder, emptied of what a previous run left, and reads the measurements
  // file (a missing one is a first start; an unreadable one is logged and ignored).
  bool Open(std::string* err);

  // A run of `chain` (the orchestrator's definition of version in use; `chain_id` its id) has
  // started its task `task` for the first time, now.
  void TaskStarted(const std::string& run_id, const std::string& chain_id,
                   const std::shared_ptr<const Chain>& chain, int task);
  void RunEnded(const std::string& run_id, const std::string& chain_id, int64_t started_ms);
  // Plans again at the next loop turn, as the prefetcher's timer does.
  void Wake();

  // A start of task `task`: a warm process of it if one is alive (a hit; the entry is gone from
  // the pool), else 0 (a miss, for a task that prewarms). Its key is of its warm launch (argv,
  // env and limits), so a changed definition never takes an old process. *context_file: where
  // the prewarmed process reads its run context (the caller writes it before Start).
  TaskRunner::Handle TakeProcess(const std::string& chain_id,
                                 const std::shared_ptr<const Chain>& chain, int task,
                                 std::string* context_file);
  // For mode: worker tasks: the pool key, and the count of a hit or a miss once the request
  // was served (`cold` from its result; `duration_ms` its time, from which the start-up saved
  // is estimated: the median cold request's time over the median warm one's).
  std::string WorkerKey(const std::string& chain_id, const std::shared_ptr<const Chain>& chain,
                        int task);
  void WorkerServed(const std::string& key, bool cold, double duration_ms);
  // Makes `dest` hold the task's inputs.files: moved from a staged entry that is still fresh
  // (a hit), else staged now (a miss) until `cancelled` (input_stager.h). On the thread pool;
  // `done` on the loop.
  void StageInputs(const std::string& chain_id, const std::shared_ptr<const Chain>& chain, int task,
                   const std::string& dest, StageCancelled cancelled,
                   std::function<void(StageResult)> done);

  nlohmann::json Status() const;  // GET /prefetch
  nlohmann::json Stats() const;   // the figures of GET /stats
  std::string Metrics() const;    // Prometheus text, for GET /metrics
  const PlanningWork& work() const { return work_; }

  // Stops every warm process and staged entry (no more prewarms) and writes the measurements
  // file.
  void Shutdown();

  const PrefetchOptions& options() const { return options_; }

 private:
  struct ActiveRun;
  struct Expected;  // a chain expected next

  std::shared_ptr<const ChainView> ViewOf(const std::string& chain_id,
                                          const std::shared_ptr<const Chain>& chain);
  void SchedulePlan();
  static void OnTimer(uv_timer_t* timer);
  void Plan();
  void Refresh();  // the forecasts that an event or a model swap made stale
  void ForecastExpected();
  // Whether `task` has caching on and may be a cache hit (PrefetchHooks::expected_hit), so that
  // its process is not prewarmed: its sources are expected unchanged (or not known yet), and no
  // task with caching on that it depends on, directly or not, is expected to run (its output,
  // this task's input, would change). A dependency with caching off is taken to give what it
  // gave before. At most kCacheAncestors dependencies are looked at per task (bounded work).
  static constexpr int kCacheAncestors = 16;
  bool MayBeCached(const ChainView& view, int task) const;
  bool MayBeCached(const ChainView& view, int task, int* budget) const;
  void AddDesires(const std::shared_ptr<const ChainView>& view,
                  const std::vector<Forecast>& forecasts, bool holds_room, double shift_ms,
                  std::vector<Desire>* out) const;
  void Carry(PlanDecision decision);
  void TrimCache(int64_t now);
  PlanBudgets Budgets() const;

  uv_loop_t* loop_;
  PrefetchOptions options_;
  PrefetchHooks hooks_;
  PredictionService* predictions_;
  TaskRunner* runner_;
  WorkerPool* workers_;
  InputStager* stager_;
  UnixMsClock clock_;
  FigureBook figures_;
  WarmPool pool_;
  uv_timer_t* timer_ = new uv_timer_t;  // freed by its close callback (Shutdown)
  bool plan_pending_ = false;           // the timer is set to plan at the next loop turn
  bool shut_down_ = false;
  std::map<const Chain*, std::shared_ptr<const ChainView>> views_;
  std::map<std::string, std::unique_ptr<ActiveRun>> runs_;
  std::vector<std::string> recent_chains_;  // the last runs' chains, oldest first (≤ 2)
  int64_t last_run_start_ms_ = 0;
  bool expected_stale_ = true;  // the chains expected next must be forecast again
  std::vector<Expected> expected_;
  std::pair<const Predictor*, uint64_t> model_seen_{nullptr, 0};  // the model forecast with
  int64_t next_trim_ms_ = 0;
  std::map<std::string, int64_t> failed_until_;  // keys whose prewarm failed: not before then
  std::vector<Desire> queue_;                    // wanted and not yet warm, best first (for Status)
  PlanningWork work_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace chainctl::daemon
