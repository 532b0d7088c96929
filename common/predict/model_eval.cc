#include "common/predict/model_eval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace chainctl {
namespace {

// A ranked list of (task_id, probability): what every model answers.
using Ranked = std::vector<std::pair<std::string, double>>;

// One of the baselines: counts of the next task after a context of the last `order` tasks of
// the run (order 0: the chain's task frequency), backing off to lower orders.
class CountBaseline {
 public:
  explicit CountBaseline(int order) : order_(order) {}

  Ranked Predict(const std::string& chain, const std::vector<std::string>& started) const {
    for (int k = std::min<int>(order_, static_cast<int>(started.size())); k >= 0; --k) {
      auto it = counts_.find(Key(chain, started, k));
      if (it == counts_.end()) continue;
      double total = 0;
      for (const auto& [task, n] : it->second) total += n;
      Ranked out;
      for (const auto& [task, n] : it->second) out.emplace_back(task, n / total);
      std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
      });
      return out;
    }
    return {};
  }

  void Learn(const std::string& chain, const std::vector<std::string>& started,
             const std::string& task) {
    for (int k = 0; k <= order_ && k <= static_cast<int>(started.size()); ++k) {
      ++counts_[Key(chain, started, k)][task];
    }
  }

 private:
  static std::string Key(const std::string& chain, const std::vector<std::string>& started, int k) {
    std::string key = chain;
    for (size_t i = started.size() - static_cast<size_t>(k); i < started.size(); ++i)
      key += '\0' + started[i];
    return key;
  }

  int order_;
  std::unordered_map<std::string, std::map<std::string, double>> counts_;
};

struct Scorer {
  double top1 = 0, top3 = 0, loss = 0;

  void Score(const Ranked& ranked, const std::string& truth) {
    double p = 0;
    for (size_t i = 0; i < ranked.size(); ++i) {
      if (ranked[i].first != truth) continue;
      p = ranked[i].second;
      if (i == 0) ++top1;
      if (i < 3) ++top3;
      break;
    }
    loss += -std::log(std::max(p, kLogLossFloor));
  }
  EvalScore Mean(size_t n) const {
    if (n == 0) return {};
    double d = static_cast<double>(n);
    return {top1 / d, top3 / d, loss / d};
  }
};

Ranked RankedOf(const std::vector<TaskCandidate>& candidates) {
  Ranked out;
  out.reserve(candidates.size());
  for (const TaskCandidate& c : candidates) out.emplace_back(c.task_id, c.probability);
  return out;
}

}  // namespace

nlohmann::json EvalScore::ToJson() const {
  return {{"top1", top1}, {"top3", top3}, {"logloss", logloss}};
}

nlohmann::json EvalReport::ToJson() const {
  return {{"records", records},
          {"runs", runs},
          {"model", model.ToJson()},
          {"baselines",
           {{"frequency", frequency.ToJson()},
            {"markov1", markov1.ToJson()},
            {"markov2", markov2.ToJson()}}}};
}

void SortForLearning(std::vector<HistoryRecord>* records) {
  std::stable_sort(records->begin(), records->end(),
                   [](const HistoryRecord& a, const HistoryRecord& b) {
                     return std::tie(a.start_unix_ms, a.end_unix_ms, a.task_id) <
                            std::tie(b.start_unix_ms, b.end_unix_ms, b.task_id);
                   });
}

EvalReport EvaluateModel(std::vector<HistoryRecord>* records, const PredictorParams& params,
                         const std::string& chain_id) {
  SortForLearning(records);
  Predictor model(params);
  CountBaseline frequency(0), markov1(1), markov2(2);
  Scorer s_model, s_frequency, s_markov1, s_markov2;
  std::unordered_map<std::string, std::vector<std::string>> started;  // by run
  EvalReport report;
  for (const HistoryRecord& r : *records) {
    if (!chain_id.empty() && r.chain_id != chain_id) continue;
    std::vector<std::string>& before = started[r.run_id];
    s_model.Score(RankedOf(model.PredictTasks(r.chain_id, before, nullptr)), r.task_id);
    s_frequency.Score(frequency.Predict(r.chain_id, before), r.task_id);
    s_markov1.Score(markov1.Predict(r.chain_id, before), r.task_id);
    s_markov2.Score(markov2.Predict(r.chain_id, before), r.task_id);
    model.Learn(ObservationOf(r));
    frequency.Learn(r.chain_id, before, r.task_id);
    markov1.Learn(r.chain_id, before, r.task_id);
    markov2.Learn(r.chain_id, before, r.task_id);
    before.push_back(r.task_id);
    ++report.records;
  }
  report.runs = started.size();
  report.model = s_model.Mean(report.records);
  report.frequency = s_frequency.Mean(report.records);
  report.markov1 = s_markov1.Mean(report.records);
  report.markov2 = s_markov2.Mean(report.records);
  return report;
}

}  // namespace chainctl
