// Decides, for one run, which tasks may start (DESIGN.md §1 "decide apart from doing", like
// ninja's Plan). Pure: no I/O, no clock, no processes. The orchestrator tells it what
// started and how each task ended; it answers which tasks became ready and in what order.
//
// States of a task in a run:
//   pending ─▶ ready ─▶ running ─▶ succeeded | failed | cancelled | cached
//      └─────────────▶ skipped | upstream_failed | cancelled   (decided without running)
// A task becomes ready, skipped or upstream_failed once its dependencies allow it to, by its
// trigger_rule (Airflow's names):
//   all_success  ready when every dependency succeeded; upstream_failed as soon as one failed
//                or is upstream_failed; else skipped as soon as one is skipped or cancelled.
//   all_done     ready when every dependency ended, however it ended.
//   one_success  ready as soon as one dependency succeeded; when all ended and none
//                succeeded: upstream_failed if one failed or is upstream_failed, else skipped.
// `when` conditions are the orchestrator's (they need outputs): it finishes a ready task it
// does not run as skipped. Retries too: Finished is called with the final outcome only.
//
// Order: ready tasks come out longest remaining path first (the critical path, by the
// weights given, e.g. historical durations), ties in file order.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "common/chain/dag.h"

namespace chainctl::daemon {

enum class TaskState {
  kPending,
  kReady,
  kRunning,
  kSucceeded,
  kFailed,
  kSkipped,
  kUpstreamFailed,
  kCancelled,
  kCached,  // not run: its result came from the task cache; to its dependents, succeeded
};

const char* ToString(TaskState s);  // "pending", "upstream_failed", ...
std::optional<TaskState> ParseTaskState(std::string_view s);
// Succeeded, failed, skipped, upstream_failed, cancelled or cached: the task will not change
// again in this run.
bool IsFinal(TaskState s);

class Scheduler {
 public:
  // `weights[i]` is task i's expected duration (any unit; 1 for each when nothing is known).
  // `rules[i]` is task i's trigger rule. The roots are ready at once.
  Scheduler(const Dag& dag, std::vector<double> weights, std::vector<TriggerRule> rules);

  // Tasks that became ready since the last call, highest priority first. Each is returned once.
  std::vector<int> TakeReady();
  // The task's priority: its weight plus the heaviest path after it.
  double Priority(int task) const { return remaining_[Index(task)]; }

  // A ready task was started.
  void Started(int task);
  // A ready or running task ended as `outcome` (succeeded, failed, skipped or cancelled);
  // the states of its dependents follow from it.
  void Finished(int task, TaskState outcome);
  // Every task that has not started is cancelled. Running tasks stay running: the caller
  // stops them and reports them Finished(kCancelled). Returns the tasks cancelled here.
  std::vector<int> CancelPending();

  // For resuming a run: tasks in `keep` (succeeded, cached or skipped) keep that state, every other
  // task starts over as pending, and what may start becomes ready.
  void Restore(std::vector<TaskState> states);

  TaskState state(int task) const { return states_[Index(task)]; }
  const std::vector<TaskState>& states() const { return states_; }
  // No task is pending, ready or running.
  bool Done() const { return unfinished_ == 0; }
  // Done, and no task failed, was cancelled or upstream_failed.
  bool Succeeded() const;
  // Tasks that changed state in the last call of Finished, CancelPending or Restore without
  // the caller asking for it (dependents decided skipped, upstream_failed or cancelled), in
  // the order decided. Cleared by each of those calls.
  const std::vector<int>& decided() const { return decided_; }

 private:
  static size_t Index(int task) { return static_cast<size_t>(task); }
  void Settle(int task);  // decide a pending task from its dependencies, if possible
  void Set(int task, TaskState s, bool by_rule);
  void InsertReady(int task);

  const Dag& dag_;
  std::vector<TriggerRule> rules_;
  std::vector<double> remaining_;
  std::vector<TaskState> states_;
  std::vector<int> ready_;  // not yet taken, by priority
  std::vector<int> decided_;
  size_t unfinished_ = 0;
};

}  // namespace chainctl::daemon
