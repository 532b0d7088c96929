// The predictor's model (DESIGN.md §5 "Model"): what task a run starts next, which chain is
// triggered next, and when. Pure, single-threaded and deterministic; chaind trains it on the
// thread pool and swaps it in (daemon/prefetch/prediction_service.h), `chainctl model evaluate`
// runs it offline (common/predict/model_eval.h).
//
// In a run: a variable-order Markov model over task starts. The context of a start is the last
// k tasks the run started (k = 0..max_order; a run's first start has the context "begin").
// Counts decay with a half-life in the chain's own task starts. The orders are blended by
// Witten-Bell interpolation, the lowest over a Dirichlet prior proportional to each task's
// `prefetch_weight` (uniform for tasks only known from history), so a chain without history is
// predicted from its definition and history takes over as it grows.
//
// Candidates: the chain's tasks, from its definition (ChainShape) and from history. The DAG
// rules out, and so never predicts: a task one of whose descendants has started, a task with
// trigger rule all_success one of whose dependencies has not started, and a task that has
// started (unless history has seen it start more often in a run: retries). What history says
// (a task never started more than n times in a run; a task always came after certain others; a
// task never ran in a run with one that has started, like the branches of a router)
// only makes a candidate unlikely (× unlikely_factor), as history can change.
//
// Across runs: an order-2 model of the same kind over the chains of successive runs.
//
// Timing: per task, the recent distribution of its duration and of its start-up time, cold and
// warm (SampleWindow); per pair (task started, task started next in the run), the recent
// distribution of the time between the two starts; per pair of successive chains, the time
// between their runs' starts. "Expected in" is the median of that pair's gaps.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/predict/history_record.h"
#include "common/predict/markov_counts.h"

namespace chainctl {

struct PredictorParams {
  int max_order = 3;              // 0..kMaxMarkovOrder
  double half_life = 1000;        // in the chain's task starts (runs, for chains); 0: no decay
  double prior_strength = 1.0;    // weight of the prior against the counts (Witten-Bell)
  double escape = 1.0;            // per distinct successor (Witten-Bell)
  double unlikely_factor = 1e-3;  // for candidates that history says cannot come now
  size_t tracked_runs = 4096;     // runs whose started tasks are remembered for Learn

  nlohmann::json ToJson() const;
  // Missing fields keep their defaults; values out of range are an error.
  static bool FromJson(const nlohmann::json& j, PredictorParams* out, std::string* err);
};

// What a chain's definition says: its tasks (DAG nodes), their prefetch weights (0..1) and
// dependencies (indices), and whether each needs all its dependencies to have succeeded
// (trigger rule all_success).
struct ChainShape {
  std::vector<std::string> tasks;
  std::vector<double> weights;
  std::vector<std::vector<int>> deps;
  std::vector<bool> needs_all_deps;
};

// One task start (an attempt) and what is known of it. Views: only used during Learn.
struct Observation {
  std::string_view chain_id, run_id, task_id;
  int64_t start_ms = 0;
  int64_t end_ms = 0;  // >= start_ms
  std::optional<bool> cold{};
  std::optional<double> startup_ms{};
};

// The Observation of a history record (views into it).
Observation ObservationOf(const HistoryRecord& record);

struct TaskCandidate {
  std::string task_id;
  double probability = 0;
  std::optional<double> expected_in_ms{};      // median time from the last start given to this
  std::optional<double> expected_in_p10_ms{};  // its 10th percentile (early: for prewarming)
  std::optional<double> expected_in_p90_ms{};  // its 90th percentile
  // History says it cannot come now (it already ran as often as ever in a run, or a task that
  // always came before it has not started): its probability was made unlikely_factor times
  // smaller before the candidates were normalised. The prefetcher does not prewarm these.
  bool unlikely = false;
  size_t candidate = 0;  // its index among the candidates (PredictNext: in those it was given)
};

// A candidate given to Predictor::PredictNext: a task of the chain that may start next, and
// its prior weight (its prefetch_weight; tasks history does not know get only the prior).
struct CandidateTask {
  std::string_view task_id;
  double weight = 1.0;
};

class Predictor;

// A run in progress as the model sees it, for predicting its next start again and again as it
// goes (the prefetcher). Made by Predictor::BeginRun and advanced by Predictor::Advance at each
// start, both O(1) amortised, so a PredictNext costs what its candidates cost, never what the
// run has started. Tasks and chains that history learns while the run goes (its first runs)
// are picked up by the next PredictNext. Bound to the model instance that made it: a model
// swapped in needs new contexts (compare model()); another model leaves it as it is and
// predicts nothing from it.
class RunContext {
 public:
  const Predictor* model() const { return model_; }
  size_t starts() const { return starts_; }

 private:
  friend class Predictor;
  const Predictor* model_ = nullptr;
  std::string chain_id_;
  int32_t space_ = -1;               // the chain's index; -1: history did not know it yet
  std::vector<std::string> recent_;  // the last max_order starts, oldest first
  size_t starts_ = 0;
  std::vector<uint64_t> started_;     // a bit per history symbol started
  std::vector<std::string> unknown_;  // started, and history did not know them then
  size_t known_tasks_ = 0;            // the chain's tasks when `unknown_` was last resolved
};

struct ChainCandidate {
  std::string chain_id;
  double probability = 0;
  std::optional<double> expected_in_ms{};      // median time from the previous run's start to this
  std::optional<double> expected_in_p10_ms{};  // its 10th percentile
};

class Predictor {
 public:
  explicit Predictor(PredictorParams params = {});

  // Learns a task start. A start in a run not seen before is also a trigger of its chain for
  // the across-runs model. The run's context is the starts learned before for that run with an
  // earlier (or equal) start time, so records may come in end order; the last tracked_runs
  // runs are remembered.
  void Learn(const Observation& o);

  // The candidates for the next task start of a run of `chain_id` that has started `started`
  // (oldest first; may be empty), all of them, ranked by probability (descending; ties by task
  // id), probabilities summing to 1. `shape` (may be null) adds the definition's candidates,
  // weights and DAG rules. Empty if nothing is known of the chain.
  std::vector<TaskCandidate> PredictTasks(std::string_view chain_id,
                                          const std::vector<std::string>& started,
                                          const ChainShape* shape) const;

  // A run of `chain_id` that has started nothing yet; Advance it at each start.
  RunContext BeginRun(std::string_view chain_id) const;
  void Advance(RunContext* run, std::string_view task_id) const;
  // Brings `run` up to date with what history learned since its last look (PredictNext does it
  // too): the chain, and tasks it started before history knew them.
  void Refresh(RunContext* run) const;

  // The candidates for the run's next start among `candidates` only (tasks that have not
  // started in it: the caller's frontier of the DAG), ranked as PredictTasks ranks them, with the
  // same model: the prior over `candidates` by weight, the blended orders, history's "unlikely"
  // (but for the count of starts in a run: the candidates have not started). Costs
  // O(candidates × (orders × log successors + symbols/64)). `run` must be this model's; it is
  // brought up to date with what history learned since.
  std::vector<TaskCandidate> PredictNext(RunContext* run,
                                         const std::vector<CandidateTask>& candidates) const;

  // The chains likely to be triggered after `previous` (the chains of recent runs, oldest
  // first; empty: the last runs learned), ranked as above.
  std::vector<ChainCandidate> PredictChains(const std::vector<std::string>& previous = {}) const;

  // {"duration_ms", "startup_cold_ms", "startup_warm_ms": SampleWindow::Summary, "cold_cost_ms":
  // median cold − median warm start-up, or null}; null if the task is unknown.
  nlohmann::json TaskTiming(std::string_view chain_id, std::string_view task_id) const;

  // The median duration of the task's recent runs, in ms; nullopt if history has none.
  std::optional<double> ExpectedDurationMs(std::string_view chain_id,
                                           std::string_view task_id) const;

  // Is anything known of the chain (from history)?
  bool KnowsChain(std::string_view chain_id) const;
  // Has a run of the chain ever started the task?
  bool KnowsTask(std::string_view chain_id, std::string_view task_id) const;
  // The chains whose history has `task_id`, sorted.
  std::vector<std::string> ChainsWithTask(std::string_view task_id) const;

  uint64_t observations() const { return observations_; }
  size_t chains() const { return chains_.size(); }
  size_t contexts() const { return task_counts_.contexts() + chain_counts_.contexts(); }
  const PredictorParams& params() const { return params_; }

  // The whole model but the runs in progress, versioned ("format": 1).
  nlohmann::json ToJson() const;
  static bool FromJson(const nlohmann::json& j, Predictor* out, std::string* err);

 private:
  struct ChainState {
    std::string id;
    std::unordered_map<std::string, int32_t> index{};
    std::vector<std::string> tasks{};
    uint64_t clock = 0;                          // task starts learned
    std::vector<int> max_per_run{};              // per task: most starts seen in one run
    std::vector<std::vector<uint64_t>> after{};  // per task: bitset of the tasks always before
    std::vector<std::vector<uint64_t>> with{};   // per task: bitset of the tasks ever in its runs
    std::vector<SampleWindow> duration{}, startup_cold{}, startup_warm{};
  };
  struct RunState {
    std::vector<int32_t> tasks;  // started, in start order
    std::vector<int64_t> starts;
  };

  int32_t ChainIndex(std::string_view chain_id);
  int32_t TaskIndex(ChainState& chain, std::string_view task_id);
  void LearnChainTrigger(int32_t chain, int64_t start_ms);
  void LearnStructure(ChainState& chain, const RunState& run, size_t position, int32_t task);
  std::vector<MarkovContext> Contexts(int32_t space, const std::vector<int32_t>& last,
                                      int max_order) const;
  // The task's symbol in `chain` (its task index), or a negative one if history (or `chain`,
  // which may be null) does not know it.
  static int32_t SymbolOf(const ChainState* chain, const std::string& task_id);
  // PredictTasks' candidates from a chain's definition after `started`, appended to `names` and
  // `p` in the shape's order: the tasks the DAG does not rule out that have started fewer times
  // than history has seen them start in a run (once, if it has not), each with its symbol
  // (unique and never counted for tasks history does not know) and its weight as the prior
  // (at least kMinPrior).
  static void ShapeCandidates(const ChainState* chain, const ChainShape& shape,
                              const std::vector<std::string>& started,
                              std::vector<std::string>* names,
                              std::vector<MarkovCounts::Weighted>* p);
  // The core of PredictTasks and PredictNext: `p` (symbols and prior weights of the candidates
  // `names`; symbols < 0 are tasks history does not know) blended with the counts after `last`,
  // what history says cannot come now made unlikely (`times`: the starts of each symbol in the
  // run, or null not to check them), normalised, ranked.
  std::vector<TaskCandidate> Rank(const ChainState* chain, int32_t space,
                                  std::vector<std::string> names,
                                  std::vector<MarkovCounts::Weighted> p,
                                  const std::vector<int32_t>& last,
                                  const std::vector<uint64_t>& started,
                                  const std::vector<int>* times) const;

  PredictorParams params_;
  uint64_t observations_ = 0;
  std::vector<ChainState> chains_;
  std::unordered_map<std::string, int32_t> chain_index_;
  MarkovCounts task_counts_;            // space: chain index
  MarkovCounts chain_counts_;           // space 0, symbols: chain indices
  uint64_t chain_clock_ = 0;            // runs learned
  std::vector<int32_t> recent_chains_;  // the chains of the last runs, at most 2, oldest first
  int64_t last_trigger_ms_ = 0;
  // Gaps between starts: key (space, from, to) packed by GapKey.
  std::unordered_map<uint64_t, SampleWindow> task_gaps_, chain_gaps_;
  std::unordered_map<std::string, RunState> runs_;  // by chain index "\0" run_id
  std::deque<std::string> run_order_;               // for forgetting the oldest runs
};

}  // namespace chainctl
