// What the prefetcher needs of one chain definition, computed once per version (DESIGN.md §5
// "Cost"): per task its pool key, what a prewarm of it would be, its edges both ways, and its
// place in dispatch order. An event then never parses a definition nor builds a launch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/chain/chain.h"
#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

// What is kept warm for a task. kSpawn: its process, started and blocked reading its input;
// kWorker: an idle mode: worker process; kStage: its inputs.files staged.
enum class WarmLevel { kStage, kSpawn, kWorker };
const char* ToString(WarmLevel level);  // "stage", "spawn", "worker"

struct ChainView {
  struct Task {
    // The pool key: CHAIN/TASK#hash of its warm launch (argv, env, limits); empty for a task that
    // neither prewarms, nor stages, nor runs as a worker.
    std::string key;
    // What a prewarm of its process would be: kSpawn, kWorker, or kStage for none.
    WarmLevel process = WarmLevel::kStage;
    bool stages = false;         // inputs.files to stage ahead (and a stager to do it)
    double weight = 1;           // prefetch_weight: the prior that it runs after its dependencies
    bool needs_all_deps = true;  // trigger rule all_success
    std::vector<int> deps, dependents;
    int rank = 0;  // dispatch order: lower first (longest path after it, then file order)
  };

  std::shared_ptr<const Chain> chain;  // keeps the definition (the orchestrator's plan) alive
  std::string chain_id;
  std::vector<Task> tasks;
  std::vector<int> roots;  // by rank
  bool prewarms = false;   // some task has something to prewarm: else its runs cost nothing

  const TaskSpec& spec(int task) const { return chain->tasks[static_cast<size_t>(task)]; }
  const Task& task(int i) const { return tasks[static_cast<size_t>(i)]; }
};

// How the view is made: the launch a prewarm of a task gets (for its key), and whether mode:
// worker tasks and inputs.files can be prewarmed (a worker pool, a stager).
struct ChainViewHooks {
  std::function<TaskLaunch(const TaskSpec& task)> warm_launch;
  bool workers = false;
  bool stager = false;
};

// The view of `chain` (a valid definition: no cycle, no unknown dependency).
std::shared_ptr<const ChainView> MakeChainView(std::shared_ptr<const Chain> chain,
                                               const std::string& chain_id,
                                               const ChainViewHooks& hooks);

// CHAIN/TASK#hash: processes of two launches with equal keys are interchangeable. The hash
// (FNV-1a) covers argv, env but for the per-prewarm CHAIN_WORKDIR and CHAIN_CONTEXT_FILE, the
// current directory and the limits. With `run_values` (the launch holds a caller's values, which
// are never to be written anywhere: Chain::run_values) the hash is salted with a number drawn
// once per process, so that a key tells nothing of them even to one who knows the rest of the
// launch, and the key ends in kRunValuesKey: FigureBook keeps its figures in memory only.
inline constexpr const char* kRunValuesKey = "+run";
std::string WarmKey(const std::string& chain_id, const std::string& task_id,
                    const TaskLaunch& launch, bool run_values = false);

}  // namespace chainctl::daemon
