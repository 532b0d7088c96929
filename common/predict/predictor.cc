#include "common/predict/predictor.h"

#include <algorithm>
#include <cmath>

namespace chainctl {
namespace {

constexpr int32_t kUnknown = -3;  // a context symbol no count has: a task history never saw
constexpr double kMinPrior = 0.01;
constexpr int kChainOrder = 2;

size_t Ix(int32_t i) { return static_cast<size_t>(i); }

uint64_t GapKey(int32_t space, int32_t from, int32_t to) {
  auto field = [](int32_t v) { return static_cast<uint64_t>(static_cast<uint32_t>(v + 2)); };
  return (field(space) << 44) | (field(from) << 22) | field(to);
}

void Set(std::vector<uint64_t>* bits, int32_t i) {
  size_t word = static_cast<size_t>(i) / 64;
  if (bits->size() <= word) bits->resize(word + 1);
  (*bits)[word] |= uint64_t{1} << (i % 64);
}

// Is every bit of `a` set in `b`?
bool SubsetOf(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  for (size_t w = 0; w < a.size(); ++w) {
    uint64_t other = w < b.size() ? b[w] : 0;
    if (a[w] & ~other) return false;
  }
  return true;
}

template <typename T>
void SortByProbability(std::vector<T>* candidates, std::string T::*name) {
  std::sort(candidates->begin(), candidates->end(), [name](const T& a, const T& b) {
    if (a.probability != b.probability) return a.probability > b.probability;
    return a.*name < b.*name;
  });
}

void Normalize(std::vector<MarkovCounts::Weighted>* p) {
  double total = 0;
  for (const auto& w : *p) total += w.weight;
  if (total <= 0) return;
  for (auto& w : *p) w.weight /= total;
}

// How many times each of the shape's tasks is in `started`; names not in the shape count nowhere.
std::vector<int> StartsPerTask(const ChainShape& shape, const std::vector<std::string>& started) {
  std::unordered_map<std::string_view, int> node;
  for (size_t i = 0; i < shape.tasks.size(); ++i) node.emplace(shape.tasks[i], i);
  std::vector<int> times(shape.tasks.size());
  for (const std::string& s : started) {
    auto it = node.find(s);
    if (it != node.end()) ++times[static_cast<size_t>(it->second)];
  }
  return times;
}

// The shape's tasks that the DAG rules out, given the starts of each (`times`): the ancestors
// of a started task, which cannot start any more, and a task that needs all its dependencies
// while one of them has not started.
std::vector<bool> RuledOutByDag(const ChainShape& shape, const std::vector<int>& times) {
  std::vector<bool> ruled_out(shape.tasks.size(), false);
  std::vector<int> stack;
  for (size_t i = 0; i < times.size(); ++i) {
    if (times[i] > 0) stack.push_back(static_cast<int>(i));
  }
  while (!stack.empty()) {
    size_t n = Ix(stack.back());
    stack.pop_back();
    for (int d : shape.deps[n]) {
      if (!ruled_out[Ix(d)]) stack.push_back(d);
      ruled_out[Ix(d)] = true;
    }
  }
  for (size_t i = 0; i < shape.tasks.size(); ++i) {
    if (i < shape.needs_all_deps.size() && shape.needs_all_deps[i]) {
      for (int d : shape.deps[i]) ruled_out[i] = ruled_out[i] || times[Ix(d)] == 0;
    }
  }
  return ruled_out;
}

}  // namespace

nlohmann::json PredictorParams::ToJson() const {
  return {{"max_order", max_order},
          {"half_life", half_life},
          {"prior_strength", prior_strength},
          {"escape", escape},
          {"unlikely_factor", unlikely_factor},
          {"tracked_runs", tracked_runs}};
}

bool PredictorParams::FromJson(const nlohmann::json& j, PredictorParams* out, std::string* err) {
  PredictorParams p;
  try {
    p.max_order = j.value("max_order", p.max_order);
    p.half_life = j.value("half_life", p.half_life);
    p.prior_strength = j.value("prior_strength", p.prior_strength);
    p.escape = j.value("escape", p.escape);
    p.unlikely_factor = j.value("unlikely_factor", p.unlikely_factor);
    p.tracked_runs = j.value("tracked_runs", p.tracked_runs);
  } catch (const nlohmann::json::exception& e) {
    *err = std::string("model parameters: ") + e.what();
    return false;
  }
  if (p.max_order < 0 || p.max_order > kMaxMarkovOrder) {
    *err = "max_order must be 0 to " + std::to_string(kMaxMarkovOrder);
  } else if (!(p.half_life >= 0)) {
    *err = "half_life must be 0 (no decay) or more";
  } else if (!(p.prior_strength > 0) || !(p.escape >= 0)) {
    *err = "prior_strength must be above 0 and escape 0 or more";
  } else if (!(p.unlikely_factor > 0 && p.unlikely_factor <= 1)) {
    *err = "unlikely_factor must be in (0, 1]";
  } else if (p.tracked_runs < 1) {
    *err = "tracked_runs must be 1 or more";
  } else {
    *out = p;
    return true;
  }
  return false;
}

Observation ObservationOf(const HistoryRecord& r) {
  return {.chain_id = r.chain_id,
          .run_id = r.run_id,
          .task_id = r.task_id,
          .start_ms = r.start_unix_ms,
          .end_ms = r.end_unix_ms,
          .cold = r.cold,
          .startup_ms = r.startup_ms};
}

Predictor::Predictor(PredictorParams params)
    : params_(params), task_counts_(params.half_life), chain_counts_(params.half_life) {}

int32_t Predictor::ChainIndex(std::string_view chain_id) {
  auto [it, fresh] =
      chain_index_.try_emplace(std::string(chain_id), static_cast<int32_t>(chains_.size()));
  if (fresh) chains_.push_back(ChainState{.id = std::string(chain_id)});
  return it->second;
}

int32_t Predictor::TaskIndex(ChainState& chain, std::string_view task_id) {
  auto [it, fresh] =
      chain.index.try_emplace(std::string(task_id), static_cast<int32_t>(chain.tasks.size()));
  if (fresh) {
    chain.tasks.emplace_back(task_id);
    chain.max_per_run.push_back(0);
    chain.after.emplace_back();
    chain.with.emplace_back();
    chain.duration.emplace_back();
    chain.startup_cold.emplace_back();
    chain.startup_warm.emplace_back();
  }
  return it->second;
}

std::vector<MarkovContext> Predictor::Contexts(int32_t space, const std::vector<int32_t>& last,
                                               int max_order) const {
  std::vector<MarkovContext> out;
  for (int k = 0; k <= max_order && k <= static_cast<int>(last.size()); ++k) {
    MarkovContext c{.space = space, .order = k};
    for (size_t i = 0; i < static_cast<size_t>(k); ++i)
      c.last[i] = last[last.size() - static_cast<size_t>(k) + i];
    out.push_back(c);
  }
  return out;
}

void Predictor::Learn(const Observation& o) {
  ++observations_;
  int32_t c = ChainIndex(o.chain_id);
  // By chain and run: an imported history may reuse the run ids of chaind's own runs.
  std::string key = std::to_string(c) + '\0' + std::string(o.run_id);
  auto [it, fresh] = runs_.try_emplace(std::move(key));
  RunState& run = it->second;
  if (fresh) {
    run_order_.push_back(it->first);
    LearnChainTrigger(c, o.start_ms);
  }
  ChainState& chain = chains_[static_cast<size_t>(c)];
  int32_t task = TaskIndex(chain, o.task_id);
  size_t t = static_cast<size_t>(task);

  size_t position = static_cast<size_t>(
      std::upper_bound(run.starts.begin(), run.starts.end(), o.start_ms) - run.starts.begin());
  std::vector<int32_t> last{MarkovContext::kBegin};
  for (size_t i = position > kMaxMarkovOrder ? position - kMaxMarkovOrder : 0; i < position; ++i) {
    last.push_back(run.tasks[i]);
  }
  ++chain.clock;
  for (const MarkovContext& context : Contexts(c, last, params_.max_order)) {
    task_counts_.Add(context, task, chain.clock);
  }
  if (position > 0) {
    task_gaps_[GapKey(c, run.tasks[position - 1], task)].Add(
        static_cast<double>(o.start_ms - run.starts[position - 1]));
  }
  chain.duration[t].Add(static_cast<double>(o.end_ms - o.start_ms));
  if (o.startup_ms && o.cold)
    (*o.cold ? chain.startup_cold : chain.startup_warm)[t].Add(*o.startup_ms);
  LearnStructure(chain, run, position, task);
  run.tasks.insert(run.tasks.begin() + static_cast<ptrdiff_t>(position), task);
  run.starts.insert(run.starts.begin() + static_cast<ptrdiff_t>(position), o.start_ms);

  while (run_order_.size() > params_.tracked_runs) {
    runs_.erase(run_order_.front());
    run_order_.pop_front();
  }
}

void Predictor::LearnStructure(ChainState& chain, const RunState& run, size_t position,
                               int32_t symbol) {
  size_t task = static_cast<size_t>(symbol);
  std::vector<uint64_t> before;
  int times = 1;
  for (size_t i = 0; i < position; ++i) {
    Set(&before, run.tasks[i]);
    if (run.tasks[i] == symbol) ++times;
  }
  bool first = chain.max_per_run[task] == 0;
  chain.max_per_run[task] = std::max(chain.max_per_run[task], times);
  for (int32_t other : run.tasks) {
    Set(&chain.with[task], other);
    Set(&chain.with[static_cast<size_t>(other)], symbol);
  }
  std::vector<uint64_t>& after = chain.after[task];
  if (first) {
    after = std::move(before);
    return;
  }
  for (size_t w = 0; w < after.size(); ++w) after[w] &= w < before.size() ? before[w] : 0;
}

void Predictor::LearnChainTrigger(int32_t chain, int64_t start_ms) {
  ++chain_clock_;
  for (const MarkovContext& context : Contexts(0, recent_chains_, kChainOrder)) {
    chain_counts_.Add(context, chain, chain_clock_);
  }
  if (!recent_chains_.empty()) {
    chain_gaps_[GapKey(0, recent_chains_.back(), chain)].Add(
        static_cast<double>(std::max<int64_t>(0, start_ms - last_trigger_ms_)));
  }
  recent_chains_.push_back(chain);
  if (recent_chains_.size() > kChainOrder) recent_chains_.erase(recent_chains_.begin());
  last_trigger_ms_ = start_ms;
}

int32_t Predictor::SymbolOf(const ChainState* chain, const std::string& task_id) {
  if (!chain) return kUnknown;
  auto it = chain->index.find(task_id);
  return it == chain->index.end() ? kUnknown : it->second;
}

void Predictor::ShapeCandidates(const ChainState* chain, const ChainShape& shape,
                                const std::vector<std::string>& started,
                                std::vector<std::string>* names,
                                std::vector<MarkovCounts::Weighted>* p) {
  std::vector<int> times = StartsPerTask(shape, started);
  std::vector<bool> ruled_out = RuledOutByDag(shape, times);
  for (size_t i = 0; i < shape.tasks.size(); ++i) {
    // A task runs once in a run, or more (retries) as often as history has seen it.
    int32_t symbol = SymbolOf(chain, shape.tasks[i]);
    int most = symbol == kUnknown ? 1 : std::max(1, chain->max_per_run[Ix(symbol)]);
    if (ruled_out[i] || times[i] >= most) continue;
    names->push_back(shape.tasks[i]);
    if (symbol == kUnknown) symbol = -4 - static_cast<int32_t>(i);  // unique, never counted
    double weight = i < shape.weights.size() ? shape.weights[i] : 1.0;
    p->push_back({symbol, std::max(weight, kMinPrior)});
  }
}

std::vector<TaskCandidate> Predictor::PredictTasks(std::string_view chain_id,
                                                   const std::vector<std::string>& started,
                                                   const ChainShape* shape) const {
  auto found = chain_index_.find(std::string(chain_id));
  const ChainState* chain =
      found == chain_index_.end() ? nullptr : &chains_[static_cast<size_t>(found->second)];
  int32_t space = chain ? found->second : -1;
  if (!chain && !shape) return {};

  // The candidates: the definition's tasks if there is one, else history's. Symbols are the
  // history's task indices; tasks history does not know get symbols no count has.
  std::vector<std::string> names;
  std::vector<MarkovCounts::Weighted> p;
  if (shape) {
    ShapeCandidates(chain, *shape, started, &names, &p);
  } else {
    for (size_t i = 0; i < chain->tasks.size(); ++i) {
      names.push_back(chain->tasks[i]);
      p.push_back({static_cast<int32_t>(i), 1.0});
    }
  }
  if (p.empty()) return {};
  std::vector<int32_t> last{MarkovContext::kBegin};
  for (const std::string& s : started) last.push_back(SymbolOf(chain, s));
  std::vector<uint64_t> started_bits;
  std::vector<int> times(chain ? chain->tasks.size() : 0);
  for (int32_t s : last) {
    if (s < 0) continue;
    Set(&started_bits, s);
    ++times[Ix(s)];
  }
  return Rank(chain, space, std::move(names), std::move(p), last, started_bits, &times);
}

std::vector<TaskCandidate> Predictor::Rank(const ChainState* chain, int32_t space,
                                           std::vector<std::string> names,
                                           std::vector<MarkovCounts::Weighted> p,
                                           const std::vector<int32_t>& last,
                                           const std::vector<uint64_t>& started,
                                           const std::vector<int>* times) const {
  Normalize(&p);
  std::vector<bool> unlikely(p.size(), false);
  if (chain) {
    task_counts_.Blend(Contexts(space, last, params_.max_order), chain->clock, params_.escape,
                       params_.prior_strength, &p);
    // What history says cannot come now only becomes unlikely.
    for (size_t i = 0; i < p.size(); ++i) {
      MarkovCounts::Weighted& w = p[i];
      if (w.symbol < 0) continue;
      size_t s = Ix(w.symbol);
      if ((times && (*times)[s] >= chain->max_per_run[s]) || !SubsetOf(chain->after[s], started) ||
          !SubsetOf(started, chain->with[s])) {
        w.weight *= params_.unlikely_factor;
        unlikely[i] = true;
      }
    }
    Normalize(&p);
  }

  std::vector<TaskCandidate> out;
  out.reserve(p.size());
  int32_t previous = last.empty() ? MarkovContext::kBegin : last.back();
  for (size_t i = 0; i < p.size(); ++i) {
    TaskCandidate c{.task_id = std::move(names[i]),
                    .probability = p[i].weight,
                    .unlikely = unlikely[i],
                    .candidate = i};
    if (previous >= 0 && p[i].symbol >= 0) {
      auto gap = task_gaps_.find(GapKey(space, previous, p[i].symbol));
      if (gap != task_gaps_.end() && gap->second.size() > 0) {
        c.expected_in_ms = gap->second.Quantile(0.5);
        c.expected_in_p10_ms = gap->second.Quantile(0.1);
        c.expected_in_p90_ms = gap->second.Quantile(0.9);
      }
    }
    out.push_back(std::move(c));
  }
  SortByProbability(&out, &TaskCandidate::task_id);
  return out;
}

RunContext Predictor::BeginRun(std::string_view chain_id) const {
  RunContext run;
  run.model_ = this;
  run.chain_id_ = chain_id;
  return run;
}

void Predictor::Advance(RunContext* run, std::string_view task_id) const {
  if (run->model_ != this) return;  // another model's: its indices mean nothing here
  ++run->starts_;
  run->recent_.emplace_back(task_id);
  if (run->recent_.size() > kMaxMarkovOrder) run->recent_.erase(run->recent_.begin());
  if (run->space_ >= 0) {
    const ChainState& chain = chains_[Ix(run->space_)];
    auto it = chain.index.find(std::string(task_id));
    if (it != chain.index.end()) return Set(&run->started_, it->second);
  }
  run->unknown_.emplace_back(task_id);
}

// What history learned since the run's last look: the chain, and tasks started before history
// knew them. Costs the tasks still unknown, only when the chain has gained tasks.
void Predictor::Refresh(RunContext* run) const {
  if (run->model_ != this) return;
  if (run->space_ < 0) {
    auto found = chain_index_.find(run->chain_id_);
    if (found == chain_index_.end()) return;
    run->space_ = found->second;
  }
  const ChainState& chain = chains_[Ix(run->space_)];
  if (run->known_tasks_ == chain.tasks.size()) return;
  run->known_tasks_ = chain.tasks.size();
  std::erase_if(run->unknown_, [&](const std::string& task_id) {
    auto it = chain.index.find(task_id);
    if (it == chain.index.end()) return false;
    Set(&run->started_, it->second);
    return true;
  });
}

std::vector<TaskCandidate> Predictor::PredictNext(
    RunContext* run, const std::vector<CandidateTask>& candidates) const {
  if (candidates.empty() || run->model_ != this) return {};
  Refresh(run);
  const ChainState* chain = run->space_ >= 0 ? &chains_[Ix(run->space_)] : nullptr;
  std::vector<std::string> names;
  std::vector<MarkovCounts::Weighted> p;
  names.reserve(candidates.size());
  p.reserve(candidates.size());
  for (const CandidateTask& c : candidates) {
    int32_t symbol = SymbolOf(chain, std::string(c.task_id));
    if (symbol == kUnknown) symbol = -4 - static_cast<int32_t>(names.size());  // never counted
    names.emplace_back(c.task_id);
    p.push_back({symbol, std::max(c.weight, kMinPrior)});
  }
  std::vector<int32_t> last;
  if (run->starts_ < static_cast<size_t>(kMaxMarkovOrder)) last.push_back(MarkovContext::kBegin);
  for (const std::string& s : run->recent_) last.push_back(SymbolOf(chain, s));
  return Rank(chain, run->space_, std::move(names), std::move(p), last, run->started_, nullptr);
}

std::vector<ChainCandidate> Predictor::PredictChains(
    const std::vector<std::string>& previous) const {
  if (chains_.empty()) return {};
  std::vector<int32_t> last;
  if (previous.empty()) {
    last = recent_chains_;
  } else {
    for (const std::string& id : previous) {
      auto it = chain_index_.find(id);
      last.push_back(it == chain_index_.end() ? kUnknown : it->second);
    }
  }
  std::vector<MarkovCounts::Weighted> p;
  for (size_t i = 0; i < chains_.size(); ++i) p.push_back({static_cast<int32_t>(i), 1.0});
  Normalize(&p);
  chain_counts_.Blend(Contexts(0, last, kChainOrder), chain_clock_, params_.escape,
                      params_.prior_strength, &p);
  Normalize(&p);
  std::vector<ChainCandidate> out;
  for (const auto& w : p) {
    ChainCandidate c{.chain_id = chains_[Ix(w.symbol)].id, .probability = w.weight};
    if (!last.empty() && last.back() >= 0) {
      auto gap = chain_gaps_.find(GapKey(0, last.back(), w.symbol));
      if (gap != chain_gaps_.end() && gap->second.size() > 0) {
        c.expected_in_ms = gap->second.Quantile(0.5);
        c.expected_in_p10_ms = gap->second.Quantile(0.1);
      }
    }
    out.push_back(std::move(c));
  }
  SortByProbability(&out, &ChainCandidate::chain_id);
  return out;
}

nlohmann::json Predictor::TaskTiming(std::string_view chain_id, std::string_view task_id) const {
  auto c = chain_index_.find(std::string(chain_id));
  if (c == chain_index_.end()) return nullptr;
  const ChainState& chain = chains_[Ix(c->second)];
  auto t = chain.index.find(std::string(task_id));
  if (t == chain.index.end()) return nullptr;
  const SampleWindow& cold = chain.startup_cold[Ix(t->second)];
  const SampleWindow& warm = chain.startup_warm[Ix(t->second)];
  nlohmann::json cost = nullptr;
  if (cold.size() > 0) cost = cold.Quantile(0.5) - (warm.size() > 0 ? warm.Quantile(0.5) : 0.0);
  return {{"duration_ms", chain.duration[Ix(t->second)].Summary()},
          {"startup_cold_ms", cold.Summary()},
          {"startup_warm_ms", warm.Summary()},
          {"cold_cost_ms", cost}};
}

std::optional<double> Predictor::ExpectedDurationMs(std::string_view chain_id,
                                                    std::string_view task_id) const {
  auto c = chain_index_.find(std::string(chain_id));
  if (c == chain_index_.end()) return std::nullopt;
  const ChainState& chain = chains_[Ix(c->second)];
  auto t = chain.index.find(std::string(task_id));
  if (t == chain.index.end() || chain.duration[Ix(t->second)].size() == 0) return std::nullopt;
  return chain.duration[Ix(t->second)].Quantile(0.5);
}

bool Predictor::KnowsChain(std::string_view chain_id) const {
  return chain_index_.count(std::string(chain_id)) > 0;
}

bool Predictor::KnowsTask(std::string_view chain_id, std::string_view task_id) const {
  auto found = chain_index_.find(std::string(chain_id));
  if (found == chain_index_.end()) return false;
  return chains_[static_cast<size_t>(found->second)].index.count(std::string(task_id)) > 0;
}

std::vector<std::string> Predictor::ChainsWithTask(std::string_view task_id) const {
  std::vector<std::string> out;
  for (const ChainState& chain : chains_) {
    if (chain.index.count(std::string(task_id))) out.push_back(chain.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace chainctl
