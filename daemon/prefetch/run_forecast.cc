#include "daemon/prefetch/run_forecast.h"

#include <algorithm>
#include <map>

namespace chainctl::daemon {
namespace {

size_t Ix(int i) { return static_cast<size_t>(i); }

// When a candidate may be needed: early, the 10th percentile of the gaps seen (else the
// median, else now).
double EarlyNeed(const TaskCandidate& c) {
  return c.expected_in_p10_ms.value_or(c.expected_in_ms.value_or(0));
}

// The candidates of one step: the first `n` of the frontier but the tasks the path ahead has
// started, and the dependents those made eligible, in dispatch order, at most `n`.
std::vector<int> StepCandidates(const ChainView& view, const RunFrontier& frontier,
                                const std::vector<int>& path, size_t n) {
  auto on_path = [&path](int t) { return std::find(path.begin(), path.end(), t) != path.end(); };
  std::vector<int> out;
  frontier.First(n, on_path, &out);
  std::map<int, int> extra;  // dependents of the path: how many of their deps it started
  for (int p : path) {
    for (int d : view.task(p).dependents) ++extra[d];
  }
  for (auto [task, count] : extra) {
    if (frontier.started(task) || on_path(task)) continue;
    if (frontier.Eligible(task, 0)) continue;  // already in the frontier: ranked there
    if (frontier.Eligible(task, count)) out.push_back(task);
  }
  std::sort(out.begin(), out.end(),
            [&view](int a, int b) { return view.task(a).rank < view.task(b).rank; });
  if (out.size() > n) out.resize(n);
  return out;
}

}  // namespace

RunFrontier::RunFrontier(const ChainView& view)
    : view_(view), started_(view.tasks.size()), deps_started_(view.tasks.size()) {
  for (int root : view.roots) frontier_.emplace(view.task(root).rank, root);
}

bool RunFrontier::Eligible(int task, int extra) const {
  const ChainView::Task& t = view_.task(task);
  if (t.deps.empty()) return true;
  int n = deps_started_[Ix(task)] + extra;
  return t.needs_all_deps ? n >= static_cast<int>(t.deps.size()) : n > 0;
}

void RunFrontier::Started(int task) {
  if (started_[Ix(task)]) return;
  started_[Ix(task)] = true;
  frontier_.erase({view_.task(task).rank, task});
  for (int d : view_.task(task).dependents) {
    ++deps_started_[Ix(d)];
    if (!started_[Ix(d)] && Eligible(d, 0)) frontier_.emplace(view_.task(d).rank, d);
  }
}

void ForecastRun(const Predictor& model, RunContext* context, const ChainView& view,
                 const RunFrontier& frontier, double p0, double last_start_ms,
                 const ForecastLimits& limits, std::vector<Forecast>* out, ForecastWork* work) {
  model.Refresh(context);
  RunContext ahead = *context;
  std::vector<int> path;  // the tasks started ahead, in order
  double p_path = p0, need_ms = last_start_ms;
  bool known_chain = model.KnowsChain(view.chain_id);
  std::vector<CandidateTask> asked;
  for (size_t depth = 0; depth < limits.lookahead; ++depth) {
    std::vector<int> tasks = StepCandidates(view, frontier, path, limits.candidates);
    if (tasks.empty()) return;
    asked.clear();
    for (int t : tasks) asked.push_back({view.spec(t).task_id, view.task(t).weight});
    std::vector<TaskCandidate> ranked = model.PredictNext(&ahead, asked);
    ++work->predictions;
    work->candidates += asked.size();
    const TaskCandidate* best = nullptr;
    int best_task = -1;
    for (const TaskCandidate& c : ranked) {
      if (c.unlikely) continue;
      if (depth > 0 && known_chain && !model.KnowsTask(view.chain_id, c.task_id)) continue;
      double p = p_path * c.probability;
      if (p < limits.min_probability) continue;
      int task = tasks[c.candidate];
      out->push_back({.task = task, .probability = p, .need_ms = need_ms + EarlyNeed(c)});
      if (!best) {
        best = &c;
        best_task = task;
      }
    }
    if (!best) return;
    p_path *= best->probability;
    need_ms += EarlyNeed(*best);
    path.push_back(best_task);
    model.Advance(&ahead, best->task_id);
  }
}

}  // namespace chainctl::daemon
