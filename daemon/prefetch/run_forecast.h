// What a run will start next, and when (DESIGN.md §5 "Cost"): the run's frontier, kept as it
// goes, and the model's forecast over a bounded part of it. Pure: no I/O, no clock.
//
// The frontier of a run is the tasks that have not started and whose dependencies allow them to
// start next: all of them started (trigger rule all_success), or at least one (the other rules),
// or none to wait for (roots). Tasks leave it when they start. It is kept in dispatch order
// (ChainView::Task::rank), so its first tasks are the ones the orchestrator would start first.
//
// A forecast looks at the first `candidates` tasks of the frontier only, and follows the most
// likely path `lookahead` starts deep; so its work is bounded by those two numbers, never by the
// chain's width nor the run's length (ForecastWork counts it, for the tests that say so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "common/predict/predictor.h"
#include "daemon/prefetch/chain_view.h"

namespace chainctl::daemon {

class RunFrontier {
 public:
  explicit RunFrontier(const ChainView& view);

  // `task` started (its first start in the run; later ones change nothing). O(its dependents ×
  // log frontier).
  void Started(int task);
  bool started(int task) const { return started_[static_cast<size_t>(task)]; }
  // How many of `task`'s dependencies have started.
  int deps_started(int task) const { return deps_started_[static_cast<size_t>(task)]; }
  // Would `task` be in the frontier if `extra` more of its dependencies had started?
  bool Eligible(int task, int extra) const;
  // Up to `n` tasks of the frontier, first in dispatch order, skipping those `skip` says.
  template <typename Skip>
  void First(size_t n, Skip skip, std::vector<int>* out) const {
    for (auto it = frontier_.begin(); it != frontier_.end() && out->size() < n; ++it) {
      if (!skip(it->second)) out->push_back(it->second);
    }
  }
  size_t size() const { return frontier_.size(); }

 private:
  const ChainView& view_;
  std::vector<bool> started_;
  std::vector<int> deps_started_;
  std::set<std::pair<int, int>> frontier_;  // (rank, task)
};

// A task the run is expected to start: `probability` of the path to it, needed (early: the 10th
// percentile of the gaps history saw) at `need_ms`.
struct Forecast {
  int task = 0;
  double probability = 0;
  double need_ms = 0;
};

struct ForecastLimits {
  size_t candidates = 32;  // frontier tasks looked at per start ahead
  size_t lookahead = 8;    // starts ahead along the most likely path
  double min_probability = 0.05;
};

// The work done, counted: model calls and candidates scored.
struct ForecastWork {
  uint64_t predictions = 0;
  uint64_t candidates = 0;
};

// Appends to *out what the run of `view` will start next, along its most likely path: at each
// step, every candidate above min_probability (its path's probability × its own), needed at
// `last_start_ms` + the gaps along the path; steps beyond the first only over tasks the chain's
// history has seen (the model has no "the run ends here": after the last task it would spread
// over the tasks never run). `context` is the run's, made by `model` (refreshed, then copied for
// the steps ahead). Candidates history says cannot come now (unlikely) are left out.
void ForecastRun(const Predictor& model, RunContext* context, const ChainView& view,
                 const RunFrontier& frontier, double p0, double last_start_ms,
                 const ForecastLimits& limits, std::vector<Forecast>* out, ForecastWork* work);

}  // namespace chainctl::daemon
