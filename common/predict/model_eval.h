// Offline evaluation of the predictor (`chainctl model evaluate`), against three baselines,
// with this protocol (issue 6):
//
//   Sort the records by (start, end, task_id). For each record in that order, each model is
//   asked for a ranked list of candidates for the record's task_id, given the task_ids its run
//   started before (in that order; the first record of a run is predicted from its chain
//   alone). Score a top-1 hit, a top-3 hit and the log-loss −ln max(p, 1e-6) of the record's
//   task_id. Then every model learns the record.
//
// Baselines, each ranking by count (ties by task_id) with probabilities count / total:
//   frequency  how often each task started in the chain
//   markov1    the tasks that followed the run's previous task; no previous task, or never
//              seen: frequency
//   markov2    the tasks that followed the run's previous two; fewer than two, or never seen:
//              markov1
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/predict/history_record.h"
#include "common/predict/predictor.h"

namespace chainctl {

inline constexpr double kLogLossFloor = 1e-6;

struct EvalScore {
  double top1 = 0, top3 = 0, logloss = 0;  // means over the records
  nlohmann::json ToJson() const;
};

struct EvalReport {
  size_t records = 0;
  size_t runs = 0;
  EvalScore model;
  EvalScore frequency, markov1, markov2;
  // {records, runs, model: {top1, top3, logloss}, baselines: {frequency, markov1, markov2}}
  nlohmann::json ToJson() const;
};

// Runs the protocol on `records` (reordered in place) with a Predictor of `params`. If
// `chain_id` is not empty, only that chain's records count.
EvalReport EvaluateModel(std::vector<HistoryRecord>* records, const PredictorParams& params,
                         const std::string& chain_id = "");

// Sorts by (start, end, task_id): the order of the protocol and of training.
void SortForLearning(std::vector<HistoryRecord>* records);

}  // namespace chainctl
