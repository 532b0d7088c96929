// Runs chains (DESIGN.md §1 "orchestrator", §3, §4): a run is created by Trigger, its tasks
// are decided by a Scheduler, started through a TaskRunner up to `jobs` at a time across all
// runs (longest remaining path first), fed their input and checked against their schemas;
// every transition is an event, persisted through the StoreWriter (group commit) together
// with one history record per attempt.
//
// Run record (runs db, key RunKey(n), envelope 1, JSON):
//   {"run_id", "chain_id", "chain_version", "status": running|succeeded|failed|cancelled|
//    interrupted, "input", "created_unix_ms", "ended_unix_ms"?, "error"?, "output"? (on
//    success: the leaf's output, or {"<leaf>": output, ...} for several leaves),
//    "task_states": {"<state>": count, ...}, "resumed"? (times resumed), "no_cache"?}
// Task record (key RunTaskKey(n, task_id), envelope 1, JSON): {"task_id", "index" (in the
// chain), "state" (scheduler.h), "attempts", "started_unix_ms"?, "ended_unix_ms"?, "error"?,
// "process"? (while running: TaskRunner::Locate, for finding it after a crash), "cache"? (a task
// with caching on: {"hit", "key"? (hex), "reason"} — "cached", or why it ran: task_key.h
// ExplainMiss, "--no-cache", a corrupt entry, why it cannot be cached)}.
// A transition rewrites only the records it changes, once per commit; the API's form of a
// run is the run record with "tasks": [task records in chain order] (without "index").
// Events (NDJSON lines, key RunEventKey(n, seq)): {"seq", "time_unix_ms", "run_id", "type",
// ...} with type run_started {chain_id, chain_version, tasks}, task_started {task_id,
// attempt}, task_retrying {task_id, attempt, error, backoff_ms}, task_finished {task_id,
// state, attempt?, duration_ms?, error?, cache?}, run_finished {status, duration_ms, error?,
// output?}, run_resumed {resumed, tasks} (then the events of the tasks that run again).
//
// Acknowledgement (DESIGN.md §4 "Retention"): a run's end is told to clients only once the
// commit holding its end (record, events, outputs, history) succeeded. Until then the
// followers do not get run_finished, and GET /runs shows the run as status "running" with
// "ending": true (no ended_unix_ms, error or output); while the store fails (StoreWriter
// degraded) that lasts until a retry succeeds, and Trigger and Resume answer 507.
//
// Files of a run (the newest keep_run_dirs ended runs keep theirs): RUNS_DIR/run-N/TASK/ holds
// input.json, attempt-K.log (stderr), output.json
// ($CHAIN_OUTPUT_FILE), work/ ($CHAIN_WORKDIR, the task's current folder; work/inputs/DEP/
// has the files DEP wrote) and out/ ($CHAIN_OUTDIR).
//
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/exec/task_runner.h"
#include "daemon/run/resources.h"
#include "daemon/run/scheduler.h"
#include "daemon/store/history.h"
#include "daemon/store/registry.h"
#include "daemon/store/store_writer.h"

namespace chainctl {
class HashMemo;
}

namespace chainctl::daemon {

class Prefetcher;
class TaskCache;
class WorkerPool;
struct StageResult;

namespace orchestrator_detail {
struct StoredRun;
}

struct OrchestratorOptions {
  std::string runs_dir;                  // made if missing
  size_t jobs = 1;                       // tasks running at once, across runs
  std::vector<std::string> base_env;     // "NAME=value": the environment every task starts from
  uint64_t kill_grace_ms = 5000;         // SIGTERM to SIGKILL on timeout or cancel
  size_t keep_run_dirs = 1000;           // folders of the newest ended runs kept; older go
  size_t keep_runs = 10000;              // store records of the newest ended runs kept; older go
  uint64_t keep_runs_for_ms = 0;         // and none ended longer ago than this (0: any age)
  uint64_t max_log_bytes = 64ull << 20;  // a task's stderr log on disk (log_bound.h); 0: no bound
  // What tasks' resource_requirements are admitted against (daemon/run/resources.h). With GPUs,
  // every task gets CUDA_VISIBLE_DEVICES: the ids it was granted, "" if it asked for none.
  Capacity capacity;
};

// Why a request about runs was refused; `status` is the HTTP status the API answers with.
struct RunError {
  // 404 no such chain/run/task, 409 wrong state, 422 invalid input, 500, 507 the store fails
  int status = 500;
  std::string code;
  std::string message;
  nlohmann::json details;
};

// What a caller adds to a run (DESIGN.md §7; run_params.cc). Refusals: 422 invalid_env (a name
// that is not [A-Za-z_][A-Za-z0-9_]* or is CHAIN_*), env_file (the chain's env_file cannot be
// read or parsed), unknown_task (a task not in the chain).
struct RunParams {
  // The caller's environment for every task of the run, over chaind's own, the chain's env_file
  // and the tasks' `env`. Held in memory only: the run's record keeps the names ("env"), never
  // the values, and Resume must be given them again.
  std::map<std::string, std::string> env = {};
  // Trigger: only these tasks and those they depend on run; the others end skipped, "not
  // selected", and the run's output is theirs (the record's "selected"). Empty: every task.
  std::vector<std::string> tasks = {};
  // `run --no-cache`: no task of the run is restored from the task cache (each runs). Results
  // are still stored where their key has no entry yet (an entry stays: one key, one result, the
  // first stored, as between chainds), so the next run may hit. The record keeps "no_cache".
  bool no_cache = false;
};

class Orchestrator {
 public:
  // Nothing is owned; all must outlive the orchestrator.
  Orchestrator(uv_loop_t* loop, Registry* registry, History* history, Store* store,
               StoreWriter* writer, TaskRunner* runner, OrchestratorOptions options,
               UnixMsClock clock = RealUnixMs);
  ~Orchestrator();
  Orchestrator(const Orchestrator&) = delete;
  Orchestrator& operator=(const Orchestrator&) = delete;

  // Before the loop runs: makes the runs folder, finds the last run number, and marks runs
  // that a previous chaind left running as interrupted (writes synchronously), having
  // stopped the task processes stored with them (TaskRunner::StopOrphan).
  bool Open(std::string* err);
  // Resumes the runs Open marked interrupted (chaind --resume-interrupted); refusals are logged.
  void ResumeInterrupted();

  // Called on the loop with each attempt's history record as it is handed to the store (seq
  // not yet set): the predictor learns from it (prediction_service.h). Set before runs start.
  void OnAttemptRecorded(std::function<void(const HistoryRecord&)> observer) {
    attempt_recorded_ = std::move(observer);
  }
  // `observer` is called on the loop once no run is active: the last one's end is stored.
  void OnIdle(std::function<void()> observer) { idle_ = std::move(observer); }

  // Expected task durations (ms) from history, for the critical path: the Scheduler's weights
  // (without it, or for a task history has not seen, all tasks weigh the same). Set before runs
  // start.
  using Durations =
      std::function<std::optional<double>(const std::string& chain_id, const std::string& task_id)>;
  void UseDurations(Durations durations) { durations_ = std::move(durations); }

  // Prefetching (daemon/prefetch/prefetcher.h) and worker mode (daemon/exec/worker_pool.h); either
  // may be null (no prefetching; mode: worker tasks then run as one-shot processes). Set before
  // runs start. Tasks with inputs.files need the prefetcher: it stages them (prefetched or not).
  void UsePrefetcher(Prefetcher* prefetcher) { prefetcher_ = prefetcher; }
  void UseWorkers(WorkerPool* workers) { workers_ = workers; }
  // The task cache (DESIGN.md §4 "Cache"; orchestrator_cache.cc) and the file hash memo its keys
  // use; either null: no task is cached. Set before runs start.
  void UseCache(TaskCache* cache, HashMemo* memo) {
    cache_ = cache;
    memo_ = memo;
  }
  // For the prefetcher: the latest definition of a chain (null if none), and the launch of a
  // prewarmed process of `task` in `dir` (its workdir, log and $CHAIN_CONTEXT_FILE are there;
  // its environment has nothing run-specific).
  std::shared_ptr<const Chain> LatestChain(const std::string& chain_id);
  TaskLaunch WarmLaunch(const TaskSpec& task, const std::string& dir) const;
  // The launch of a mode: worker process of `task`: WarmLaunch in RUNS_DIR/workers, its stderr
  // appended to RUNS_DIR/workers/CHAIN.TASK.log.
  TaskLaunch WorkerLaunch(const std::string& chain_id, const TaskSpec& task) const;

  // Starts a run of `chain_id` (version 0: the latest) with `input`. `accepted` is called once
  // the run is stored durably, with its id, or with why it was refused (no chain, input
  // invalid for a root task's input_schema: 422 with the violations).
  using Accepted = std::function<void(std::optional<RunError> error, const std::string& run_id)>;
  using RunParams = daemon::RunParams;
  void Trigger(const std::string& chain_id, int version, nlohmann::json input, Accepted accepted,
               RunParams params = {});

  // The run record (above); nullopt if there is no such run.
  bool GetRun(std::string_view run_id, std::optional<nlohmann::json>* run, std::string* err);
  // Run records (without their tasks), newest first; `chain_id` "" = all chains.
  bool ListRuns(const std::string& chain_id, size_t limit, std::vector<nlohmann::json>* runs,
                std::string* err);
  // The output of a succeeded task of a run; nullopt if none.
  bool GetOutput(std::string_view run_id, std::string_view task_id,
                 std::optional<nlohmann::json>* output, std::string* err);

  // Sends a run's events so far to `events` (NDJSON lines), then, if `follow` and the run
  // has not ended, the later ones as they happen (those of one loop turn together); `end` is
  // called once no event will follow. Returns a follower id for Unfollow (0 if `end` was already
  // called), or a RunError for an unknown run.
  struct Follower {
    std::function<void(const std::string& lines)> events;  // NDJSON: lines ending in "\n"
    std::function<void()> end;
  };
  std::optional<RunError> Follow(std::string_view run_id, bool follow, Follower follower,
                                 uint64_t* id);
  void Unfollow(std::string_view run_id, uint64_t id);

  // Runs again, in the same run, every task of an ended run that neither succeeded nor was
  // skipped (failed, cancelled, upstream_failed, or stopped by a crash), reusing the stored
  // outputs and the files of the rest; attempts go on counting, each task gets its `retry`
  // afresh. The run's record says "resumed": N; its events go on with run_resumed {resumed,
  // tasks}. `accepted` as for Trigger; refusals: 404 no run, 409 still running, succeeded,
  // chain version gone, or the run's folder removed (--keep-run-files), 422 a task over the
  // capacity. The re-run tasks' folders are cleared on the loop before this returns.
  // params.env: the run's environment again (422 env_required names those missing); the chain's
  // env_file is read again; params.tasks is not used (the selection stays the run's).
  void Resume(std::string_view run_id, Accepted accepted, RunParams params = {});

  // Cancels a running run: tasks not started are cancelled, running ones are stopped (their
  // process groups signalled). 409 if the run has already ended.
  std::optional<RunError> Cancel(std::string_view run_id);

  // The 404 for a run that is not stored: saying so when it was removed (keep_runs).
  RunError NoRun(std::string_view run_id) const;

  // The stderr log of a task's attempt (0: the last attempt).
  std::optional<RunError> LogPath(std::string_view run_id, std::string_view task_id, int attempt,
                                  std::string* path);

  // Stops every run (running tasks are cancelled, runs end as interrupted), waits for their
  // records to be stored, then calls `done`. Trigger refuses new runs from then on.
  void Shutdown(std::function<void()> done);

  size_t active_runs() const { return runs_.size(); }
  size_t running_tasks() const { return running_; }
  // The capacity and what running attempts hold of it.
  const Resources& resources() const { return resources_; }

 private:
  struct Plan;
  struct Run;
  struct Queued {
    double priority;
    uint64_t seq;
    uint64_t run;
    int task;
    bool operator<(const Queued& o) const {
      return priority != o.priority ? priority > o.priority : seq < o.seq;
    }
  };
  struct Ended {  // a stored ended run, as retention sees it
    uint64_t n;
    int64_t ended_ms;  // unix ms; 0 if its record does not say
  };

  // The run lifecycle (orchestrator.cc).
  std::shared_ptr<const Plan> PlanFor(const ChainVersion& version, std::string* err);
  // The plan of `version` for a run to start: 500 bad_chain if the stored chain does not load,
  // else CheckCapacity's refusal, if any.
  std::optional<RunError> RunnablePlan(const ChainVersion& version,
                                       std::shared_ptr<const Plan>* plan);
  // A 422 if a task of `plan` could never be admitted (chaind restarted with less capacity).
  std::optional<RunError> CheckCapacity(const Plan& plan) const;
  std::vector<double> Weights(const Plan& plan) const;  // the Scheduler's, by history
  // Why no run can start now (Trigger, Resume): 503 chaind is stopping, 507 the store fails.
  std::optional<RunError> Unavailable() const;
  // A 422 with the violations if `input` does not fit the input_schema of a root task that
  // takes the trigger's input as it is (no input_map).
  std::optional<RunError> CheckInput(const Plan& plan, const nlohmann::json& input) const;
  // A new active run of `plan` with the next run number, its folder made; null with *err if
  // the folder cannot be made (the number is used up all the same).
  Run* NewRun(std::shared_ptr<const Plan> plan, nlohmann::json input, std::string* err);
  // The run's parameters (run_params.cc). RunEnvironment: *definition (the plan's chain when
  // called) is left as it is, or, with an env_file or `env`, made a copy with those in every
  // task's `env` (env_file, then the task's, then the caller's). SelectTasks: the indexes of
  // params.tasks. ApplySelection: run.targets and what they depend on stay, the others are
  // skipped "not selected"; returns how many stay.
  std::optional<RunError> RunEnvironment(const Plan& plan,
                                         const std::map<std::string, std::string>& env,
                                         std::shared_ptr<const Chain>* definition) const;
  std::optional<RunError> SelectTasks(const Plan& plan, const std::vector<std::string>& tasks,
                                      std::vector<int>* targets) const;
  size_t ApplySelection(Run& run);
  // Starts a run made active by Trigger or Resume, its events emitted: its run and task
  // records stored at the next commit, `accepted` called once that commit is done, its
  // folders made ahead, its deadline armed and its ready tasks queued. The caller dispatches.
  void StartRun(Run& run, Accepted accepted);
  void ArmDeadline(Run& run);  // the chain's `timeout`: StopRun when it passes
  // Cancels what has not started and stops what runs (Cancel, the chain's timeout, Shutdown).
  void StopRun(Run& run);

  // From the ready queue to a started attempt (orchestrator_launch.cc).
  void PrepareDirs(const Run& run);  // make the tasks' folders ahead, off the loop
  void Pump(Run& run);  // queue the tasks that became ready; skip those whose `when` is false
  nlohmann::json ConditionContext(Run& run, int task);
  // Starts queued tasks, first in line first, while a --jobs slot is free and the first's
  // resource requests fit; one that does not fit waits there, and nothing overtakes it.
  void Dispatch();
  void Launch(Run& run, int task);
  // The attempt's process (or worker request) started, `grant` released when it ends.
  void StartAttempt(Run& run, int task, int attempt, Grant grant, TaskLaunch launch);
  void StageInputs(Run& run, int task, int attempt, Grant grant, TaskLaunch launch);
  void WriteContext(const Run& run, int task, int attempt, const std::string& path) const;
  // Before the first attempt: the input built and checked, the folders made, the input file
  // written, the dependencies' files linked in. False with *err (and the errno of a failed
  // system call in *error_number, else 0).
  bool PrepareInput(Run& run, int task, std::string* err, int* error_number);
  TaskLaunch MakeLaunch(const Run& run, int task, int attempt) const;

  // The task cache (orchestrator_cache.cc). Before the first attempt of a go, a task with caching
  // on has its key made and looked up on the thread pool (LookUpCache): a hit ends it `cached`
  // with the stored result (CacheLooked); a miss puts it back in line, to run, its key kept; on
  // success StoreResult stores the result under that key before the task is finished, so that
  // a run that ended has its results in the cache. Why a task's result cannot be cached ("" if
  // it can): CacheRefusal.
  std::string CacheRefusal(const Run& run, int task) const;
  void LookUpCache(Run& run, int task);
  struct CacheLookup;
  void CacheLooked(uint64_t n, int task, CacheLookup& found);
  void RecordCached(const Run& run, int task);
  void StoreResult(Run& run, int task, nlohmann::json output);

  // From an attempt's result to the end of its task and run (orchestrator_results.cc).
  void OnResult(uint64_t n, int task, int attempt, TaskResult result);
  // The attempt's history record (`ok`: its output was accepted; else `error` says why), told
  // to the OnAttemptRecorded observer and appended at the next commit.
  void RecordAttempt(const Run& run, int task, int attempt, const TaskResult& result, bool ok,
                     const std::string& error);
  // A history record of `task` with its ids and versions set; appended (told to the observer,
  // stored at the next commit) by AppendHistory.
  HistoryRecord HistoryOf(const Run& run, int task) const;
  void AppendHistory(const HistoryRecord& record);
  // The task succeeded with `output`: stored at the next commit, kept for its dependents.
  void TaskSucceeded(Run& run, int task, nlohmann::json output);
  // A succeeded or cached task's output: stored at the next commit, kept for its dependents,
  // its out/ files noted.
  void KeepOutput(Run& run, int task, nlohmann::json output);
  void Retry(Run& run, int task, const std::string& error);
  // An attempt that found chaind short of descriptors, processes or memory (IsResourceShortage)
  // retried without counting against retry.max_attempts. False: not retried (the run ends, or
  // kMaxShortRetries such retries happened while no other task ran to free what it holds).
  bool RetryShortOfResources(Run& run, int task, const std::string& error);
  void FinishTask(Run& run, int task, TaskState state, const std::string& error);
  // The tasks the scheduler decided in its last call without being asked (scheduler.h:
  // decided), each ended at `ended_ms` with a task_finished event; returned for the caller to
  // save.
  std::vector<int> EmitDecided(Run& run, int64_t ended_ms);
  void MaybeFinishRun(Run& run);
  // The status and error of a run whose tasks are all decided: interrupted (Shutdown), failed
  // over the chain's timeout, cancelled, succeeded, or failed naming the first failed task.
  void DecideRunStatus(Run& run);
  // The commit holding run n's end is done: `ok`, or not when chaind stops while the store
  // fails (then the end is never told). Its followers get the end and are let go, the run
  // leaves memory for retention, and the idle and Shutdown observers are told.
  void RunEndStored(uint64_t n, bool ok);

  // Events, records, followers and the read side (orchestrator_events.cc).
  void Emit(Run& run, nlohmann::json event);
  void FlushEvents();                 // the uv_check callback: SendEvents of every run with news
  void SendEvents(Run& run);          // the events followers have not had, in one piece
  void SaveRun(Run& run);             // the run record, at the next commit
  void SaveTask(Run& run, int task);  // a task's record, at the next commit
  nlohmann::json RunSummary(const Run& run) const;            // the stored run record
  nlohmann::json TaskRecord(const Run& run, int task) const;  // a stored task record
  nlohmann::json RunRecord(const Run& run) const;             // summary + tasks: the API's form
  // `record` (RunSummary or RunRecord of `run`) as clients may see it: an end not stored yet
  // is not shown ("Acknowledgement" above).
  nlohmann::json ShownRecord(const Run& run, nlohmann::json record) const;
  Run* Active(std::string_view run_id);

  // After a crash and on demand (orchestrator_recovery.cc).
  bool MarkInterrupted(const std::vector<orchestrator_detail::StoredRun>& runs, std::string* err);
  // The stored run `run_id` if it can be resumed; else Resume's refusal: Unavailable, 409 it is
  // running or its end is being stored, the store failed, 404 no run, 409 it succeeded.
  std::optional<RunError> StoredToResume(std::string_view run_id,
                                         std::optional<orchestrator_detail::StoredRun>* stored);
  // The plan of the chain version of run `id`'s stored `record`: 409 chain_gone if that
  // version is no longer stored, the store failed, or RunnablePlan's refusal.
  std::optional<RunError> PlanToResume(const std::string& id, const nlohmann::json& record,
                                       std::shared_ptr<const Plan>* plan);
  // The Run of a stored ended run, its unfinished tasks pending again, made active.
  Run& Restart(orchestrator_detail::StoredRun stored, std::shared_ptr<const Plan> plan,
               std::string dir);
  // run_resumed {resumed, tasks: those that run again}, then the tasks the restore decided.
  void EmitResumed(Run& run);

  // Retention (orchestrator_retention.cc). A run's records are deleted in one commit, and its
  // folder removed once that commit succeeded; folders may go earlier (keep_run_dirs).
  void RunDirEnded(uint64_t n);  // keep_run_dirs: remove the oldest folders, off the loop
  // At Open: the stored runs' folders, oldest first, to RunDirEnded; the others removed.
  void OpenRunDirs(const std::vector<Ended>& ended,
                   const std::vector<orchestrator_detail::StoredRun>& left);
  // keep_runs: removes the oldest runs over the count; and one over the age (ExpireRuns).
  void RunRecordEnded(uint64_t n, int64_t ended_ms);
  void ExpireRuns(size_t most);  // keep_runs_for_ms: removes at most `most`, then ArmExpiry
  void RemoveRun(uint64_t n);    // its records in the next commit, then its folder
  void RemoveDirs(std::vector<uint64_t> runs);  // off the loop
  void ArmExpiry();  // wakes when the oldest ended run expires (keep_runs_for_ms)
  void CloseExpiry();

  uv_loop_t* loop_;
  Registry* registry_;
  History* history_;
  std::function<void(const HistoryRecord&)> attempt_recorded_;
  std::function<void()> idle_;
  Store* store_;
  StoreWriter* writer_;
  TaskRunner* runner_;
  Prefetcher* prefetcher_ = nullptr;
  Durations durations_;
  WorkerPool* workers_ = nullptr;
  TaskCache* cache_ = nullptr;
  HashMemo* memo_ = nullptr;
  OrchestratorOptions options_;
  UnixMsClock clock_;

  std::map<uint64_t, std::unique_ptr<Run>> runs_;  // active runs, and ended ones until stored
  std::map<std::string, std::shared_ptr<const Plan>> plans_;  // by "chain_id\0version"
  Resources resources_;  // held by running attempts: acquired in Launch, released at their end
  std::set<Queued> queue_;
  uint64_t queue_seq_ = 0;
  size_t running_ = 0;
  uint64_t last_run_ = 0;
  std::deque<uint64_t> ended_dirs_;       // run folders of ended runs, oldest first
  std::deque<Ended> ended_records_;       // stored records of ended runs, oldest first
  uv_timer_t* expiry_ = nullptr;          // keep_runs_for_ms: ArmExpiry
  std::set<uint64_t> removing_;           // runs whose records are being deleted
  std::vector<std::string> interrupted_;  // by Open, for ResumeInterrupted
  uint64_t next_follower_ = 1;
  std::set<uint64_t> unsent_;    // runs with events their followers have not had
  uv_check_t* flush_ = nullptr;  // runs FlushEvents after a loop turn, while unsent_
  bool stopping_ = false;
  std::function<void()> stopped_;
};

}  // namespace chainctl::daemon
