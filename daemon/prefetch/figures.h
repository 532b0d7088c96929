// What the prefetcher measured of each task's prewarms and counts of what they gave
// (DESIGN.md §5 "Measured"), by pool key (ChainView::Task::key; "stage:KEY" for staged inputs),
// and the estimates drawn from them. The measurements of the tasks seen last are kept across
// restarts in a file.
//
// Measurements file (JSON, written whole then renamed over the old one):
//   {"format": 1, "tasks": {KEY: {"chain_id", "task_id", "level", "seen_ms", "startups",
//    "rss_kb", "staged_bytes", "gaps", "cold_ms", "warm_ms", "stage_ms"?}}}
// where the windows are arrays of the last values, oldest first; "stage_ms" was added later
// (files without it read as before).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/chain/chain.h"
#include "common/predict/markov_counts.h"
#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

struct TaskFigures {
  std::string chain_id, task_id, level;
  uint64_t hits = 0, misses = 0, prewarms = 0, wasted = 0;
  double wasted_cpu_s = 0, wasted_mb_s = 0, saved_ms = 0;
  std::optional<double> startup_ms;  // the last measured start-up of a prewarm
  // Start-ups of prewarms, from the spawn until ready; one taken before it was ready counts as
  // 1.5 x its age then (it had not finished by then), so a late start is not repeated.
  SampleWindow startups;
  uint64_t rss_kb = 0;
  uint64_t staged_bytes = 0;  // of the last staging
  SampleWindow stage_ms;      // how long stagings at the task's start took
  int64_t last_start_ms = 0;
  SampleWindow gaps;              // between starts
  SampleWindow cold_ms, warm_ms;  // mode: worker: request times on a new and on a warm worker
  int64_t seen_ms = 0;            // unix ms of its last start, take or stage: the newest are kept
};

class FigureBook {
 public:
  // Before any measurement: a start-up of 500 ms, 64 MiB of memory, a keep-alive of 60 s
  // (clamped to [1 s, ttl_ms]). Below kMinGainMs, a prewarm saves less than it costs chaind (a
  // spawn, its polling, its folder): such tasks are not prewarmed.
  static constexpr double kAssumedStartupMs = 500;
  static constexpr uint64_t kAssumedMemory = 64ull << 20;
  static constexpr double kMinGainMs = 10;

  explicit FigureBook(uint64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  // The figures of `key`, marked seen now.
  TaskFigures& Touch(const std::string& key, const std::string& chain_id,
                     const std::string& task_id, int64_t now_ms);
  TaskFigures& operator[](const std::string& key) { return figures_[key]; }
  const TaskFigures* Find(const std::string& key) const;

  // Start-up a prewarm saves: the 90th percentile of measured ones (kSpawn); a cold request's
  // median time over a warm one's (kWorker); the median staging time (staged keys).
  double StartupMs(const std::string& key) const;
  // Is a prewarm of `key` worth its cost? Until measured, yes.
  bool Gains(const std::string& key) const;
  // 1.5 × the 99th percentile of the gaps between its starts, in [1 s, ttl_ms]; 60 s before
  // there are two.
  uint64_t KeepAliveMs(const std::string& key) const;
  // Measured RSS, else the declared memory, else 64 MiB.
  uint64_t MemoryOf(const std::string& key, const TaskSpec& task) const;

  void LearnStartup(TaskFigures& f, const TaskRunner::WarmState& state);
  void CountWaste(TaskFigures& f, const TaskResult& cost);

  nlohmann::json Totals() const;  // hits, misses, hit_rate, prewarms, wasted, saved
  nlohmann::json Tasks() const;   // per key, for GET /prefetch
  nlohmann::json Measurements(size_t kept) const;  // the file's form
  bool LoadMeasurements(const nlohmann::json& j, std::string* err);
  void Read(const std::string& path);  // a missing file is a first start; a bad one is logged
  void Write(const std::string& path, size_t kept) const;

 private:
  uint64_t ttl_ms_;
  std::map<std::string, TaskFigures> figures_;
};

}  // namespace chainctl::daemon
