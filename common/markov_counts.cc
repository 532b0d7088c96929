#include "common/markov_counts.h"

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

void MarkovCounts::Add(const MarkovContext& context, int32_t symbol, uint64_t clock) {
  std::vector<Entry>& entries = table_[context];
  for (Entry& e : entries) {
    if (e.symbol != symbol) continue;
    e.weight = e.weight * Decay(e.stamp, clock) + 1.0;
    e.stamp = std::max(e.stamp, clock);
    return;
  }
  entries.push_back({symbol, 1.0, clock});
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

void MarkovCounts::Blend(const std::vector<MarkovContext>& contexts, uint64_t clock, double escape,
                         double strength, std::vector<Weighted>* distribution) const {
  std::vector<Weighted>& p = *distribution;
  std::vector<double> seen(p.size());
  for (const MarkovContext& context : contexts) {
    auto it = table_.find(context);
    if (it == table_.end()) continue;
    std::fill(seen.begin(), seen.end(), 0.0);
    double total = 0;
    int distinct = 0;
    for (const Entry& e : it->second) {
      for (size_t i = 0; i < p.size(); ++i) {
        if (p[i].symbol != e.symbol) continue;
        double w = e.weight * Decay(e.stamp, clock);
        seen[i] += w;
        total += w;
        ++distinct;
        break;
      }
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
    }
  } catch (const nlohmann::json::exception& e) {
    *err = std::string("counts: ") + e.what();
    return false;
  }
  return true;
}

void SampleWindow::Add(double value) {
  if (values_.size() < kCapacity) {
    values_.push_back(value);
    return;
  }
  values_[next_] = value;
  next_ = (next_ + 1) % kCapacity;
}

double SampleWindow::Quantile(double q) const {
  if (values_.empty()) return 0;
  std::vector<double> sorted = values_;
  size_t rank =
      static_cast<size_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size())));
  size_t i = rank == 0 ? 0 : rank - 1;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(i), sorted.end());
  return sorted[i];
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
