#include "daemon/run/scheduler.h"

#include <algorithm>
#include <array>

namespace chainctl::daemon {
namespace {

constexpr std::array<const char*, 9> kStateNames = {"pending",         "ready",     "running",
                                                    "succeeded",       "failed",    "skipped",
                                                    "upstream_failed", "cancelled", "cached"};

bool IsFailure(TaskState s) { return s == TaskState::kFailed || s == TaskState::kUpstreamFailed; }
bool IsSuccess(TaskState s) { return s == TaskState::kSucceeded || s == TaskState::kCached; }

}  // namespace

const char* ToString(TaskState s) { return kStateNames[static_cast<size_t>(s)]; }

std::optional<TaskState> ParseTaskState(std::string_view s) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (s == kStateNames[i]) return static_cast<TaskState>(i);
  }
  return std::nullopt;
}

bool IsFinal(TaskState s) {
  return s != TaskState::kPending && s != TaskState::kReady && s != TaskState::kRunning;
}

Scheduler::Scheduler(const Dag& dag, std::vector<double> weights, std::vector<TriggerRule> rules)
    : dag_(dag),
      rules_(std::move(rules)),
      remaining_(ComputeCriticalPath(dag, weights).remaining),
      states_(dag.nodes.size(), TaskState::kPending),
      unfinished_(dag.nodes.size()) {
  for (int root : dag.roots) Set(root, TaskState::kReady, false);
}

std::vector<int> Scheduler::TakeReady() {
  std::vector<int> out;
  out.swap(ready_);
  return out;
}

void Scheduler::Started(int task) {
  if (states_[Index(task)] != TaskState::kReady) return;
  ready_.erase(std::remove(ready_.begin(), ready_.end(), task), ready_.end());
  states_[Index(task)] = TaskState::kRunning;
}

void Scheduler::Finished(int task, TaskState outcome) {
  decided_.clear();
  if (IsFinal(states_[Index(task)]) || !IsFinal(outcome)) return;
  ready_.erase(std::remove(ready_.begin(), ready_.end(), task), ready_.end());
  Set(task, outcome, false);
}

std::vector<int> Scheduler::CancelPending() {
  decided_.clear();
  ready_.clear();
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i] == TaskState::kPending || states_[i] == TaskState::kReady) {
      Set(static_cast<int>(i), TaskState::kCancelled, true);
    }
  }
  return decided_;
}

void Scheduler::Restore(std::vector<TaskState> states) {
  decided_.clear();
  ready_.clear();
  unfinished_ = states_.size();
  for (size_t i = 0; i < states_.size(); ++i) {
    bool keep = IsSuccess(states[i]) || states[i] == TaskState::kSkipped;
    states_[i] = TaskState::kPending;
    if (keep) {
      states_[i] = states[i];
      --unfinished_;
    }
  }
  for (int task : dag_.topo_order) {
    if (states_[Index(task)] == TaskState::kPending) Settle(task);
  }
}

bool Scheduler::Succeeded() const {
  if (!Done()) return false;
  return std::none_of(states_.begin(), states_.end(),
                      [](TaskState s) { return IsFailure(s) || s == TaskState::kCancelled; });
}

void Scheduler::Settle(int task) {
  size_t ended = 0, succeeded = 0, failed = 0, skipped = 0, cancelled = 0;
  const std::vector<int>& deps = dag_.nodes[Index(task)].deps;
  for (int dep : deps) {
    TaskState s = states_[Index(dep)];
    if (!IsFinal(s)) continue;
    ++ended;
    if (IsSuccess(s)) ++succeeded;
    if (IsFailure(s)) ++failed;
    if (s == TaskState::kSkipped) ++skipped;
    if (s == TaskState::kCancelled) ++cancelled;
  }
  bool all_ended = ended == deps.size();
  if (deps.empty()) return Set(task, TaskState::kReady, true);
  switch (rules_[Index(task)]) {
    case TriggerRule::kAllSuccess:
      if (failed > 0) return Set(task, TaskState::kUpstreamFailed, true);
      if (cancelled > 0) return Set(task, TaskState::kCancelled, true);
      if (skipped > 0) return Set(task, TaskState::kSkipped, true);
      if (all_ended) return Set(task, TaskState::kReady, true);
      return;
    case TriggerRule::kAllDone:
      if (all_ended) return Set(task, TaskState::kReady, true);
      return;
    case TriggerRule::kOneSuccess:
      if (succeeded > 0) return Set(task, TaskState::kReady, true);
      if (!all_ended) return;
      if (failed > 0) return Set(task, TaskState::kUpstreamFailed, true);
      return Set(task, cancelled > 0 ? TaskState::kCancelled : TaskState::kSkipped, true);
  }
}

void Scheduler::Set(int task, TaskState s, bool by_rule) {
  states_[Index(task)] = s;
  if (s == TaskState::kReady) return InsertReady(task);
  if (by_rule) decided_.push_back(task);
  if (!IsFinal(s)) return;
  --unfinished_;
  for (int dependent : dag_.nodes[Index(task)].dependents) {
    if (states_[Index(dependent)] == TaskState::kPending) Settle(dependent);
  }
}

void Scheduler::InsertReady(int task) {
  auto before = [this](int a, int b) {
    if (remaining_[Index(a)] != remaining_[Index(b)])
      return remaining_[Index(a)] > remaining_[Index(b)];
    return a < b;
  };
  ready_.insert(std::upper_bound(ready_.begin(), ready_.end(), task, before), task);
}

}  // namespace chainctl::daemon
