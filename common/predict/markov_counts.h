// The counting parts of the predictor (DESIGN.md §5 "Model"), pure and single-threaded:
//
// - MarkovCounts: for each context (the last 0..K symbols before an event, as small ints),
//   how often each symbol followed it, with counts that decay exponentially with the number
//   of events since they were added (a half-life in events), and the blend of all orders of a
//   context into one distribution (Witten-Bell interpolation over a prior).
// - SampleWindow: the last N values of a measurement (durations, start-up costs), with its
//   quantiles: a distribution that follows recent behaviour, not just a mean.
//
// Symbols are small non-negative ints (the caller interns names); kBegin stands for the start
// of a sequence, so "first task of a run" is the context {kBegin}.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

namespace chainctl {

inline constexpr int kMaxMarkovOrder = 3;

// The last `order` symbols before an event, oldest first, in a namespace (a chain; 0 if the
// caller has one sequence only).
struct MarkovContext {
  int32_t space = 0;
  int32_t order = 0;                            // 0..kMaxMarkovOrder
  std::array<int32_t, kMaxMarkovOrder> last{};  // last[0..order), the rest 0

  bool operator==(const MarkovContext&) const = default;
  static constexpr int32_t kBegin = -1;
};

struct MarkovContextHash {
  size_t operator()(const MarkovContext& c) const;
};

// Counts with recency decay. The clock is the caller's event counter (per namespace: a chain's
// task starts), so a chain that runs rarely does not forget because others run often.
class MarkovCounts {
 public:
  // half_life: events after which a count weighs half; 0 = no decay.
  explicit MarkovCounts(double half_life = 0) : half_life_(half_life) {}

  // One more `symbol` after `context`, at event number `clock` (non-decreasing per namespace).
  void Add(const MarkovContext& context, int32_t symbol, uint64_t clock);

  // The decayed weight of each symbol seen after `context`, at `clock`; empty if none.
  struct Weighted {
    int32_t symbol;
    double weight;
  };
  std::vector<Weighted> Get(const MarkovContext& context, uint64_t clock) const;
  // The decayed weight of `symbol` after `context`, at `clock`; 0 if never seen. O(log n).
  double Weight(const MarkovContext& context, int32_t symbol, uint64_t clock) const;

  // Blends `prior` (a distribution over candidate symbols, summing to 1) with the counts of the
  // contexts from order 0 to contexts.size()-1, lowest first: at each order, p = λ·ML + (1−λ)·p
  // with λ = n / (n + escape·distinct + strength), n the decayed count of the context's
  // successors among the candidates. Symbols outside `prior` are ignored. Returns the blended
  // distribution over the same candidates, in place. Costs O(candidates × orders × log
  // successors): never the number of symbols the context has seen.
  void Blend(const std::vector<MarkovContext>& contexts, uint64_t clock, double escape,
             double strength, std::vector<Weighted>* distribution) const;

  size_t contexts() const { return table_.size(); }

  // Persistence: [[space, order, [last...], [[symbol, weight, stamp], ...]], ...].
  nlohmann::json ToJson() const;
  bool FromJson(const nlohmann::json& j, std::string* err);

 private:
  struct Entry {  // a context's entries are sorted by symbol
    int32_t symbol;
    double weight;   // as of `stamp`
    uint64_t stamp;  // the clock of the last Add
  };
  double Decay(uint64_t from, uint64_t to) const;

  double half_life_;
  std::unordered_map<MarkovContext, std::vector<Entry>, MarkovContextHash> table_;
};

// The last `capacity` values added (a ring), for quantiles of recent behaviour.
class SampleWindow {
 public:
  static constexpr size_t kCapacity = 64;

  void Add(double value);
  size_t size() const { return values_.size(); }
  // The q-quantile (0 <= q <= 1) of the values kept, by nearest rank; 0 when empty. The
  // values are sorted at the first call after an Add, not at each call.
  double Quantile(double q) const;
  double Mean() const;

  // {"n": count, "p50": .., "p90": .., "mean": ..}; null when empty.
  nlohmann::json Summary() const;
  nlohmann::json ToJson() const;  // the values, oldest first
  bool FromJson(const nlohmann::json& j, std::string* err);

 private:
  std::vector<double> values_;          // at most kCapacity
  size_t next_ = 0;                     // where the next value goes once full
  mutable std::vector<double> sorted_;  // values_ sorted; empty: not yet since the last Add
};

}  // namespace chainctl
