#include "common/predict/markov_counts.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>

namespace chainctl {

size_t MarkovContextHash::operator()(const MarkovContext& c) const {
  uint64_t h =
      (static_cast<uint64_t>(static_cast<uint32_t>(c.space)) << 8) ^ static_cast<uint64_t>(c.order);
  for (int32_t s : c.last) h = h * 0x9E3779B97F4A7C15ull + static_cast<uint32_t>(s + 2);
  return std::hash<uint64_t>{}(h ^ (h >> 29));
}

double MarkovCounts::Decay(uint64_t from, uint64_t to) const {
  if (half_life_ <= 0 || to <= from) return 1.0;
  return std::exp2(-static_cast<double>(to - from) / half_life_);
}

// Each context's entries are sorted by symbol: an Add or a look-up of one symbol costs
// O(log successors), so the order-0 context (every task of a chain) stays cheap.
namespace {
template <typename Entries>
auto FindSymbol(Entries& entries, int32_t symbol) {
  return std::lower_bound(entries.begin(), entries.end(), symbol,
                          [](const auto& e, int32_t s) { return e.symbol < s; });
}
}  // namespace

void MarkovCounts::Add(const MarkovContext& context, int32_t symbol, uint64_t clock) {
  std::vector<Entry>& entries = table_[context];
  auto it = FindSymbol(entries, symbol);
  if (it != entries.end() && it->symbol == symbol) {
    it->weight = it->weight * Decay(it->stamp, clock) + 1.0;
    it->stamp = std::max(it->stamp, clock);
    return;
  }
  entries.insert(it, {symbol, 1.0, clock});
}

std::vector<MarkovCounts::Weighted> MarkovCounts::Get(const MarkovContext& context,
                                                      uint64_t clock) const {
  std::vector<Weighted> out;
  auto it = table_.find(context);
  if (it == table_.end()) return out;
  out.reserve(it->second.size());
  for (const Entry& e : it->second) out.push_back({e.symbol, e.weight * Decay(e.stamp, clock)});
  return out;
}

double MarkovCounts::Weight(const MarkovContext& context, int32_t symbol, uint64_t clock) const {
  auto row = table_.find(context);
  if (row == table_.end()) return 0;
  auto it = FindSymbol(row->second, symbol);
  if (it == row->second.end() || it->symbol != symbol) return 0;
  return it->weight * Decay(it->stamp, clock);
}

// One look-up per candidate and order: the cost is the candidates', not the successors'.
void MarkovCounts::Blend(const std::vector<MarkovContext>& contexts, uint64_t clock, double escape,
                         double strength, std::vector<Weighted>* distribution) const {
  std::vector<Weighted>& p = *distribution;
  std::vector<double> seen(p.size());
  for (const MarkovContext& context : contexts) {
    auto row = table_.find(context);
    if (row == table_.end()) continue;
    const std::vector<Entry>& entries = row->second;
    double total = 0;
    int distinct = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      seen[i] = 0;
      auto it = FindSymbol(entries, p[i].symbol);
      if (it == entries.end() || it->symbol != p[i].symbol) continue;
      seen[i] = it->weight * Decay(it->stamp, clock);
      total += seen[i];
      ++distinct;
    }
    if (total <= 0) continue;
    double lambda = total / (total + escape * distinct + strength);
    for (size_t i = 0; i < p.size(); ++i) {
      p[i].weight = lambda * seen[i] / total + (1 - lambda) * p[i].weight;
    }
  }
}

nlohmann::json MarkovCounts::ToJson() const {
  // Sorted, so that equal models have equal forms.
  std::vector<const decltype(table_)::value_type*> rows;
  for (const auto& row : table_) rows.push_back(&row);
  std::sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
    const MarkovContext &x = a->first, &y = b->first;
    return std::tie(x.space, x.order, x.last) < std::tie(y.space, y.order, y.last);
  });
  nlohmann::json out = nlohmann::json::array();
  for (const auto* row : rows) {
    const auto& [context, entries] = *row;
    nlohmann::json last = nlohmann::json::array();
    for (size_t i = 0; i < static_cast<size_t>(context.order); ++i) last.push_back(context.last[i]);
    nlohmann::json es = nlohmann::json::array();
    for (const Entry& e : entries) es.push_back({e.symbol, e.weight, e.stamp});
    out.push_back({context.space, std::move(last), std::move(es)});
  }
  return out;
}

bool MarkovCounts::FromJson(const nlohmann::json& j, std::string* err) {
  table_.clear();
  try {
    for (const nlohmann::json& row : j) {
      MarkovContext context;
      context.space = row.at(0).get<int32_t>();
      const nlohmann::json& last = row.at(1);
      if (last.size() > kMaxMarkovOrder) {
        *err = "a context longer than " + std::to_string(kMaxMarkovOrder);
        return false;
      }
      context.order = static_cast<int32_t>(last.size());
      for (size_t i = 0; i < last.size(); ++i) context.last[i] = last[i].get<int32_t>();
      std::vector<Entry>& entries = table_[context];
      for (const nlohmann::json& e : row.at(2)) {
        entries.push_back({e.at(0).get<int32_t>(), e.at(1).get<double>(), e.at(2).get<uint64_t>()});
      }
      // Sorted by symbol (files written before format 1.1 kept them in insertion order).
      std::sort(entries.begin(), entries.end(),
                [](const Entry& a, const Entry& b) { return a.symbol < b.symbol; });
    }
  } catch (const nlohmann::json::exception& e) {
    *err = std::string("counts: ") + e.what();
    return false;
  }
  return true;
}

void SampleWindow::Add(double value) {
  sorted_.clear();
  if (values_.size() < kCapacity) {
    values_.push_back(value);
    return;
  }
  values_[next_] = value;
  next_ = (next_ + 1) % kCapacity;
}

double SampleWindow::Quantile(double q) const {
  if (values_.empty()) return 0;
  if (sorted_.size() != values_.size()) {  // sorted once per Add, however many quantiles
    sorted_ = values_;
    std::sort(sorted_.begin(), sorted_.end());
  }
  size_t rank =
      static_cast<size_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted_.size())));
  return sorted_[rank == 0 ? 0 : rank - 1];
}

double SampleWindow::Mean() const {
  if (values_.empty()) return 0;
  double sum = 0;
  for (double v : values_) sum += v;
  return sum / static_cast<double>(values_.size());
}

nlohmann::json SampleWindow::Summary() const {
  if (values_.empty()) return nullptr;
  return {{"n", values_.size()}, {"p50", Quantile(0.5)}, {"p90", Quantile(0.9)}, {"mean", Mean()}};
}

nlohmann::json SampleWindow::ToJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < values_.size(); ++i) out.push_back(values_[(next_ + i) % values_.size()]);
  return out;
}

bool SampleWindow::FromJson(const nlohmann::json& j, std::string* err) {
  values_.clear();
  sorted_.clear();
  next_ = 0;
  if (!j.is_array()) {
    *err = "a sample window is not an array";
    return false;
  }
  for (const nlohmann::json& v : j) {
    if (!v.is_number()) {
      *err = "a sample is not a number";
      return false;
    }
    Add(v.get<double>());
  }
  return true;
}

}  // namespace chainctl
