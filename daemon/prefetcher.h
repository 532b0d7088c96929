// The prefetch engine (DESIGN.md §5 "Decision", "Prewarm levels", "Measured"): from the model's
// predictions, it prewarms the tasks expected next so that, when they really start, their
// start-up is already done.
//
// Watching. The orchestrator tells it each run's progress (the tasks started so far) and each
// run's end. After each, it plans: for every active run, the candidates the model gives for
// the run's next start (PredictTasks with the run's started tasks and the chain's shape), and
// along the most likely path up to `lookahead` starts deep, each with the probability of its
// path and its predicted need (now + the expected-in times along the path); across runs, the
// chains expected next (PredictChains after the recent runs' chains) and, the same way, their
// first tasks, needed at the previous run's start + the expected gap between runs.
//
// Deciding. A candidate is worth prewarming if P ≥ min_probability, its level is not `off`,
// and P × start-up saved − cost of holding it warm > 0, where the start-up saved is the 90th
// percentile of those measured on earlier prewarms of the task (from the spawn until it blocked
// reading its stdin; one taken before that counts as 1.5 × its age then; 500 ms before any
// was measured) and the cost is cost_ms_per_mb_s × its memory (MB) × the time it
// is expected to sit unused ((1 − P) × its keep-alive + margin, seconds). The queue is these
// candidates by that score; one is started `start-up + margin` before its predicted need, not
// earlier (a timer waits for the next), if the budgets allow: warm processes, their memory
// (measured RSS, else the task's declared memory, else 64 MiB) and staged bytes. Processes are
// kept for better candidates not due yet (not for those of a chain already overdue: their need
// slides with the clock). When a budget is full, an idle warm entry whose current score is
// clearly lower (under 0.8×) is stopped (waste) to make room.
//
// Levels. `spawn` (not for tasks that ask for GPUs: their devices are chosen at the start):
// TaskRunner::Prewarm starts the process in its own folder
// (RUNS_DIR/prewarm/N, also its $CHAIN_WORKDIR, so the orphan scan finds it after a crash) with
// nothing run-specific in its environment: $CHAIN_CONTEXT_FILE names the file that Take's
// caller writes the run's context to (run_id, task_id, attempt, workdir, outdir, input_file,
// output_file) before the input is written to its stdin. `worker`: WorkerPool::Prewarm starts
// an idle worker. `stage`, and `spawn` tasks with inputs: the task's `inputs.files` are staged
// into RUNS_DIR/prewarm/N/files on the thread pool (InputStager), re-checked at use and moved
// into the task's inputs/files/; a stale one is restaged.
//
// Keep-alive. Per task, 1.5 × the 99th percentile of the times between its starts (the last
// 64; 60 s before there are two), between 1 s and `ttl_ms`; extended while a plan wants the
// entry now (it would start it now if it were not there; when it ends, a plan decides). An
// entry past it is stopped and counted as waste: a wrong prewarm never runs the
// task's work (a prewarmed process never gets input unless a run of the task takes it).
//
// Measured: hits (a start that took a warm entry), misses (a start of a task that could have
// had one and did not), wasted prewarms with their CPU-seconds and MB-seconds, start-up saved,
// the queue, the warm pool by task: Status() and Metrics() (Prometheus text).
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
#include <set>
#include <string>
#include <vector>

#include "common/chain.h"
#include "common/markov_counts.h"
#include "daemon/input_stager.h"
#include "daemon/prediction_service.h"
#include "daemon/task_runner.h"
#include "daemon/worker_pool.h"

namespace chainctl::daemon {

struct PrefetchOptions {
  bool enabled = true;            // chaind --no-prefetch: false
  std::string dir;                // the prewarm folders (made if missing)
  size_t max_warm = 0;            // warm processes at once; 0: the machine's cores
  uint64_t max_memory_bytes = 0;  // their memory; 0: 25% of RAM
  uint64_t max_staged_bytes = 1ull << 30;
  uint64_t ttl_ms = 600'000;  // the longest keep-alive
  uint64_t margin_ms = 50;    // started this much before start-up + need
  double min_probability = 0.05;
  double cost_ms_per_mb_s = 0.01;  // what holding 1 MB warm for 1 s costs, in ms of start-up
  size_t lookahead = 8;            // starts ahead along a run's most likely path
  // Where what was measured of each task's prewarms (start-ups, memory, staged bytes, the gaps
  // between its starts, worker request times) is kept across restarts: read by Open, written
  // by Shutdown. Empty: not kept. Of the tasks seen last (started, taken or staged), this many.
  std::string measurements_file;
  size_t measurements_kept = 1000;
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

  // A run of `chain` has started `started` so far (oldest first), now.
  void RunProgress(const std::string& run_id, const std::string& chain_id,
                   std::shared_ptr<const Chain> chain, const std::vector<std::string>& started);
  void RunEnded(const std::string& run_id, const std::string& chain_id, int64_t started_ms);

  // A start of `task` of `chain_id` whose launch is `launch` (its key is of the launch's argv,
  // env and limits, so a changed definition never takes an old process): a warm process of it
  // if one is alive (a hit; the entry is gone from the pool), else 0 (a miss, for a task that
  // prewarms). *context_file: where the prewarmed process reads its run context (the caller
  // writes it before Start).
  TaskRunner::Handle TakeProcess(const std::string& chain_id, const TaskSpec& task,
                                 std::string* context_file);
  // For mode: worker tasks: the pool key, and the count of a hit or a miss once the request
  // was served (`cold` from its result; `duration_ms` its time, from which the start-up saved
  // is estimated: the median cold request's time over the median warm one's).
  std::string WorkerKey(const std::string& chain_id, const TaskSpec& task) const;
  void WorkerServed(const std::string& key, bool cold, double duration_ms);

  // Makes `dest` hold the task's inputs.files: moved from a staged entry that is still fresh
  // (a hit), else staged now (a miss). On the thread pool; `done` on the loop.
  void StageInputs(const std::string& chain_id, const TaskSpec& task, const std::string& dest,
                   std::function<void(StageResult)> done);

  nlohmann::json Status() const;  // GET /prefetch
  nlohmann::json Stats() const;   // the figures of GET /stats
  std::string Metrics() const;    // Prometheus text, for GET /metrics

  // Stops every warm process and staged entry (no more prewarms) and writes the measurements
  // file.
  void Shutdown();

  const PrefetchOptions& options() const { return options_; }

 private:
  enum class Level { kStage, kSpawn, kWorker };
  struct Desire;
  struct Entry;
  struct TaskFigures;

  void Plan();
  void Reconcile();
  void TrimCache(double now);
  void Want(const std::shared_ptr<const Chain>& chain, const std::string& chain_id,
            std::vector<std::string> started, double p0, double need_ms, std::vector<Desire>* out);
  void AddDesires(const std::shared_ptr<const Chain>& chain, const std::string& chain_id, int index,
                  double p, double need_ms, std::vector<Desire>* out);
  bool Start(const Desire& d);
  bool MakeRoom(const Desire& d);
  void Stop(uint64_t id, bool wasted);
  void Expire();
  void ArmTimer(int64_t at_ms);
  static void OnTimer(uv_timer_t* timer);
  void CountWaste(TaskFigures& f, const TaskResult& cost);
  void LearnStartup(TaskFigures& f, const TaskRunner::WarmState& state);
  void ProcessEnded(uint64_t id, TaskResult cost);
  uint64_t KeepAliveMs(const std::string& key) const;
  double StartupMs(const std::string& key) const;
  uint64_t MemoryOf(const std::string& key, const TaskSpec& task) const;
  std::string KeyOf(const std::string& chain_id, const TaskSpec& task) const;
  size_t WarmProcesses() const;
  uint64_t WarmMemory() const;
  uint64_t StagedBytes() const;
  TaskFigures& Figures(const std::string& key, const std::string& chain_id,
                       const std::string& task_id);
  nlohmann::json Totals() const;
  nlohmann::json Measurements() const;
  bool LoadMeasurements(const nlohmann::json& j, std::string* err);
  void ReadMeasurements();
  void WriteMeasurements() const;

  struct ActiveRun {
    std::shared_ptr<const Chain> chain;
    std::string chain_id;
    int64_t last_start_ms = 0;  // of its last task start
    std::vector<std::string> started;
  };

  uv_loop_t* loop_;
  PrefetchOptions options_;
  PrefetchHooks hooks_;
  PredictionService* predictions_;
  TaskRunner* runner_;
  WorkerPool* workers_;
  InputStager* stager_;
  UnixMsClock clock_;
  uv_timer_t* timer_ = new uv_timer_t;  // freed by its close callback (Shutdown)
  bool shut_down_ = false;
  std::map<std::string, ActiveRun> runs_;
  std::vector<std::string> recent_chains_;  // the last runs' chains, oldest first (≤ 2)
  int64_t last_run_start_ms_ = 0;
  double next_trim_ms_ = 0;
  std::vector<Desire> queue_;  // wanted and not yet warm, best score first
  std::map<uint64_t, std::unique_ptr<Entry>> entries_;
  uint64_t next_entry_ = 1;
  std::map<std::string, TaskFigures> figures_;  // by key
  // Prewarmed processes taken by an attempt, and their folders, removed once they have ended.
  std::vector<std::pair<TaskRunner::Handle, std::string>> taken_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace chainctl::daemon
