// Predictor::ToJson / FromJson: the persisted form of the model (format 1). Runs in progress
// are not part of it: a model read back learns the starts of a run it did not see begin
// without their earlier context.
#include <map>

#include "common/predict/predictor.h"

namespace chainctl {
namespace {

constexpr int kFormat = 1;

nlohmann::json Windows(const std::vector<SampleWindow>& windows) {
  nlohmann::json out = nlohmann::json::array();
  for (const SampleWindow& w : windows) out.push_back(w.ToJson());
  return out;
}

bool ReadWindows(const nlohmann::json& j, size_t n, std::vector<SampleWindow>* out,
                 std::string* err) {
  if (!j.is_array() || j.size() != n) {
    *err = "a timing list does not match the tasks";
    return false;
  }
  out->assign(n, SampleWindow());
  for (size_t i = 0; i < n; ++i) {
    if (!(*out)[i].FromJson(j[i], err)) return false;
  }
  return true;
}

nlohmann::json Gaps(const std::unordered_map<uint64_t, SampleWindow>& gaps) {
  std::map<uint64_t, const SampleWindow*> sorted;  // equal models, equal forms
  for (const auto& [key, window] : gaps) sorted.emplace(key, &window);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [key, window] : sorted) out.push_back({key, window->ToJson()});
  return out;
}

bool ReadGaps(const nlohmann::json& j, std::unordered_map<uint64_t, SampleWindow>* out,
              std::string* err) {
  for (const nlohmann::json& row : j) {
    if (!(*out)[row.at(0).get<uint64_t>()].FromJson(row.at(1), err)) return false;
  }
  return true;
}

}  // namespace

nlohmann::json Predictor::ToJson() const {
  nlohmann::json chains = nlohmann::json::array();
  for (const ChainState& c : chains_) {
    chains.push_back({{"id", c.id},
                      {"clock", c.clock},
                      {"tasks", c.tasks},
                      {"max_per_run", c.max_per_run},
                      {"after", c.after},
                      {"with", c.with},
                      {"duration", Windows(c.duration)},
                      {"startup_cold", Windows(c.startup_cold)},
                      {"startup_warm", Windows(c.startup_warm)}});
  }
  return {{"format", kFormat},
          {"params", params_.ToJson()},
          {"observations", observations_},
          {"chains", std::move(chains)},
          {"task_counts", task_counts_.ToJson()},
          {"task_gaps", Gaps(task_gaps_)},
          {"chain_counts", chain_counts_.ToJson()},
          {"chain_gaps", Gaps(chain_gaps_)},
          {"chain_clock", chain_clock_},
          {"recent_chains", recent_chains_},
          {"last_trigger_ms", last_trigger_ms_}};
}

bool Predictor::FromJson(const nlohmann::json& j, Predictor* out, std::string* err) {
  try {
    if (!j.is_object() || j.value("format", 0) != kFormat) {
      *err = "not a model of format " + std::to_string(kFormat);
      return false;
    }
    PredictorParams params;
    if (!PredictorParams::FromJson(j.at("params"), &params, err)) return false;
    Predictor m(params);
    m.observations_ = j.at("observations").get<uint64_t>();
    for (const nlohmann::json& c : j.at("chains")) {
      ChainState s{.id = c.at("id").get<std::string>()};
      s.clock = c.at("clock").get<uint64_t>();
      s.tasks = c.at("tasks").get<std::vector<std::string>>();
      s.max_per_run = c.at("max_per_run").get<std::vector<int>>();
      s.after = c.at("after").get<std::vector<std::vector<uint64_t>>>();
      size_t n = s.tasks.size();
      if (c.contains("with")) {
        s.with = c.at("with").get<std::vector<std::vector<uint64_t>>>();
      } else {  // written before it was learned: every task may run with every other
        std::vector<uint64_t> all((n + 63) / 64, ~uint64_t{0});
        s.with.assign(n, all);
      }
      if (s.max_per_run.size() != n || s.after.size() != n || s.with.size() != n) {
        *err = "chain " + s.id + ": its lists do not match its tasks";
        return false;
      }
      if (!ReadWindows(c.at("duration"), n, &s.duration, err) ||
          !ReadWindows(c.at("startup_cold"), n, &s.startup_cold, err) ||
          !ReadWindows(c.at("startup_warm"), n, &s.startup_warm, err)) {
        return false;
      }
      for (size_t i = 0; i < n; ++i) s.index.emplace(s.tasks[i], static_cast<int32_t>(i));
      m.chain_index_.emplace(s.id, static_cast<int32_t>(m.chains_.size()));
      m.chains_.push_back(std::move(s));
    }
    if (!m.task_counts_.FromJson(j.at("task_counts"), err) ||
        !m.chain_counts_.FromJson(j.at("chain_counts"), err) ||
        !ReadGaps(j.at("task_gaps"), &m.task_gaps_, err) ||
        !ReadGaps(j.at("chain_gaps"), &m.chain_gaps_, err)) {
      return false;
    }
    m.chain_clock_ = j.at("chain_clock").get<uint64_t>();
    m.recent_chains_ = j.at("recent_chains").get<std::vector<int32_t>>();
    m.last_trigger_ms_ = j.at("last_trigger_ms").get<int64_t>();
    for (int32_t c : m.recent_chains_) {
      if (c < 0 || static_cast<size_t>(c) >= m.chains_.size()) {
        *err = "recent_chains names an unknown chain";
        return false;
      }
    }
    *out = std::move(m);
    return true;
  } catch (const nlohmann::json::exception& e) {
    *err = std::string("model: ") + e.what();
    return false;
  }
}

}  // namespace chainctl
