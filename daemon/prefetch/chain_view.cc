#include "daemon/prefetch/chain_view.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <string_view>

#include "common/chain/dag.h"

namespace chainctl::daemon {

const char* ToString(WarmLevel level) {
  switch (level) {
    case WarmLevel::kStage:
      return "stage";
    case WarmLevel::kSpawn:
      return "spawn";
    case WarmLevel::kWorker:
      return "worker";
  }
  return "stage";
}

std::string WarmKey(const std::string& chain_id, const std::string& task_id,
                    const TaskLaunch& launch, bool run_values) {
  static const uint64_t kSalt =
      std::random_device{}() * (uint64_t{1} << 32) ^ std::random_device{}();
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  if (run_values) mix(std::to_string(kSalt));
  for (const std::string& a : launch.argv) mix(a);
  mix("\x01");
  mix(launch.cwd);
  for (const std::string& e : launch.env) {
    if (!e.starts_with("CHAIN_WORKDIR=") && !e.starts_with("CHAIN_CONTEXT_FILE=")) mix(e);
  }
  mix(std::to_string(launch.memory_limit_bytes) + "/" + std::to_string(launch.cpu_limit_s));
  char out[17];
  snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return chain_id + "/" + task_id + "#" + out + (run_values ? kRunValuesKey : "");
}

namespace {

// The process a task's prewarm would start: a worker for mode: worker (with a pool), its own
// process for `prewarm: spawn` unless it asks for GPUs (which ones it gets is decided at its
// start, in its environment), else none (kStage).
WarmLevel ProcessLevel(const TaskSpec& task, const ChainViewHooks& hooks) {
  if (task.prewarm == PrewarmLevel::kOff) return WarmLevel::kStage;
  if (task.mode == TaskMode::kWorker && hooks.workers) return WarmLevel::kWorker;
  if (task.prewarm == PrewarmLevel::kSpawn && task.resource_requirements.gpu == 0) {
    return WarmLevel::kSpawn;
  }
  return WarmLevel::kStage;
}

}  // namespace

std::shared_ptr<const ChainView> MakeChainView(std::shared_ptr<const Chain> chain,
                                               const std::string& chain_id,
                                               const ChainViewHooks& hooks) {
  auto view = std::make_shared<ChainView>();
  view->chain = std::move(chain);
  view->chain_id = chain_id;
  Dag dag;
  std::string err;
  BuildDag(*view->chain, &dag, &err);  // a stored chain was checked: it never fails
  size_t n = view->chain->tasks.size();
  view->tasks.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const TaskSpec& spec = view->chain->tasks[i];
    ChainView::Task& t = view->tasks[i];
    t.process = ProcessLevel(spec, hooks);
    t.stages = spec.prewarm != PrewarmLevel::kOff && !spec.input_files.empty() && hooks.stager;
    // A key for what may be prewarmed, and for what the pools know by key (workers, staging).
    if (t.process != WarmLevel::kStage || !spec.input_files.empty() ||
        spec.mode == TaskMode::kWorker) {
      t.key = WarmKey(chain_id, spec.task_id, hooks.warm_launch(spec), view->chain->run_values);
    }
    view->prewarms = view->prewarms || t.process != WarmLevel::kStage || t.stages;
    t.weight = spec.prefetch_weight;
    t.needs_all_deps = spec.trigger_rule == TriggerRule::kAllSuccess;
    if (i < dag.nodes.size()) {
      t.deps = dag.nodes[i].deps;
      t.dependents = dag.nodes[i].dependents;
    }
  }
  // Dispatch order, as the orchestrator's: the longest path after a task first, file order
  // among equals (by task count here; the durations are the orchestrator's).
  CriticalPath path = ComputeCriticalPath(dag, std::vector<double>(dag.nodes.size(), 1.0));
  std::vector<int> order(dag.nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&path](int a, int b) {
    return path.remaining[static_cast<size_t>(a)] > path.remaining[static_cast<size_t>(b)];
  });
  for (size_t r = 0; r < order.size(); ++r)
    view->tasks[static_cast<size_t>(order[r])].rank = static_cast<int>(r);
  view->roots = dag.roots;
  std::sort(view->roots.begin(), view->roots.end(),
            [&view](int a, int b) { return view->task(a).rank < view->task(b).rank; });
  return view;
}

}  // namespace chainctl::daemon
