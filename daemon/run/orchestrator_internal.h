// What the orchestrator's files share (orchestrator.cc, orchestrator_launch.cc,
// orchestrator_results.cc, orchestrator_events.cc, orchestrator_recovery.cc,
// orchestrator_retention.cc): a run's state in memory, the timers of retries and deadlines, and
// the helpers that read stored runs. Only those files include this.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/chain/chain.h"
#include "common/chain/dag.h"
#include "common/file_hash.h"
#include "common/json_schema.h"
#include "daemon/exec/task_runner.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/scheduler.h"
#include "daemon/store/store.h"

namespace chainctl::daemon {

// A chain version made ready to run: parsed, its DAG built, its schemas compiled. Shared by
// the runs of that version.
struct Orchestrator::Plan {
  ChainVersion version;
  Chain chain;
  Dag dag;
  std::vector<std::unique_ptr<JsonSchema>> input_schemas;   // nullptr: accepts anything
  std::vector<std::unique_ptr<JsonSchema>> output_schemas;  // nullptr: accepts anything
  std::vector<int> task_versions;                           // 0: not found in the registry
  std::vector<TriggerRule> rules;
};

// A run being run (created by Trigger or Resume), until its end is stored.
struct Orchestrator::Run {
  struct Task {
    int attempts = 0;          // every attempt of every go: the next one is attempts + 1
    int first_attempt = 1;     // the first attempt of this go (a resume starts a new go)
    int short_retries = 0;     // retries short of resources while no other task ran
    bool input_ready = false;  // PrepareInput done for this go
    int64_t started_ms = 0;
    int64_t ended_ms = 0;
    std::string error;
    std::optional<nlohmann::json> output;  // once succeeded
    bool has_files = false;                // its out/ folder holds files for its dependents
    TaskRunner::Handle handle = 0;
    uint64_t worker_request = 0;  // mode: worker: the WorkerPool request while it runs
    bool staging = false;         // its inputs.files are being staged (before the spawn)
    std::shared_ptr<std::atomic<bool>> stop_staging;  // set by StopRun while staging
    uint64_t bytes_staged = 0;
    nlohmann::json input;         // mode: worker: the input, sent in the request
    nlohmann::json process;       // runner_->Locate(handle) while it runs, for crash recovery
    uv_timer_t* retry = nullptr;  // waiting for the next attempt
    // The task cache (orchestrator_cache.cc), for this go: looked up (or found not to apply),
    // the key to store a result under (a miss), the key's parts (recorded with the result, for
    // --explain) and what task_finished and the record say ({"hit", "key"?, "reason"}; null:
    // the task's caching is off).
    bool cache_looked_up = false;
    std::optional<Hash128> cache_key;
    nlohmann::json cache_parts;
    nlohmann::json cache;
  };
  uint64_t n = 0;
  std::string id;
  std::shared_ptr<const Plan> plan;
  nlohmann::json input;
  std::unique_ptr<Scheduler> scheduler;
  std::vector<Task> tasks;
  std::string status = "running";
  std::string error;
  int64_t created_ms = 0;
  int64_t ended_ms = 0;
  int resumes = 0;  // times Resume restarted it
  std::vector<std::string> events;
  std::map<uint64_t, Follower> followers;
  size_t sent = 0;  // events[0, sent) went to the followers; the rest wait for FlushEvents
  bool cancelled = false;
  bool timed_out = false;          // went over the chain's timeout: ends failed
  uv_timer_t* deadline = nullptr;  // the chain's timeout, while it runs
  bool ended = false;
  // Its end is shown to clients only once stored (orchestrator.h, "Acknowledgement"):
  // events[end_event] is run_finished, held back from followers until end_stored.
  size_t end_event = 0;
  bool end_stored = false;
  std::string dir;
  // Its definition: the plan's, or a copy holding the run's environment (RunEnvironment), in
  // memory only. What its tasks are launched with and what the prefetcher keys prewarms by, so
  // that a prewarmed process is taken only by a run with the same environment.
  std::shared_ptr<const Chain> definition;
  std::vector<std::string> env_names;  // the caller's, stored for Resume to ask for again
  std::vector<int> targets;            // the selected tasks (RunParams::tasks); empty: all
  bool no_cache = false;               // RunParams::no_cache

  // The events clients may see: all of them but a run_finished not stored yet.
  size_t Shown() const { return ended && !end_stored ? end_event : events.size(); }

  const TaskSpec& spec(int task) const { return definition->tasks[Index(task)]; }
  Task& task(int i) { return tasks[Index(i)]; }
  // The run's definition (for the prefetcher, which keys by it).
  std::shared_ptr<const Chain> chain() const { return definition; }
  // The ids of `targets` (the record's and run_started's "selected").
  std::vector<std::string> TargetIds() const {
    std::vector<std::string> ids;
    for (int i : targets) ids.push_back(plan->chain.tasks[Index(i)].task_id);
    return ids;
  }
  static size_t Index(int i) { return static_cast<size_t>(i); }
};

namespace orchestrator_detail {

// A run as stored: its record, its task records (chain order), the outputs of its succeeded
// tasks and its events.
struct StoredRun {
  uint64_t n = 0;
  nlohmann::json record;
  std::vector<nlohmann::json> tasks;
  std::map<std::string, nlohmann::json> outputs;
  std::vector<std::string> events;
};

// mkdir that is fine with an existing folder.
bool MakeDir(const std::string& path, std::string* err);
RunError StoreFailure(const std::string& err);

// What a retry or deadline timer's data points to; made with the timer, freed by CloseTimer.
struct TimerTarget {
  Orchestrator* self;
  uint64_t n;
  int task;  // -1 for a run's deadline
};

// Stops and frees a timer and its target.
void CloseTimer(uv_timer_t* timer);

// Stored runs (orchestrator_recovery.cc). A record that does not decode is an error here and
// is skipped by the scans.
bool DecodeRecord(std::string_view value, std::string_view what, nlohmann::json* out,
                  std::string* err);
// The JSON record at `key` of the runs database; `*out` nullopt if there is none.
bool GetRecord(ReadTxn& txn, const std::string& key, std::string_view what,
               std::optional<nlohmann::json>* out, std::string* err);
// The task records of run n, in chain order.
bool ReadTaskRecords(ReadTxn& txn, uint64_t n, std::vector<nlohmann::json>* tasks,
                     std::string* err);
// The stored events of run n (NDJSON lines without their "\n"), in order.
bool ReadEvents(ReadTxn& txn, uint64_t n, std::vector<std::string>* lines, std::string* err);

}  // namespace orchestrator_detail
}  // namespace chainctl::daemon
