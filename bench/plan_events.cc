// Plan time per event against chain width (issue 14, benchmark 4): the prefetcher's own cost on
// the loop, with the real model and planner and a runner whose prewarms are ready at once and
// run nothing. For each shape (a line, and a fan-out after a root) and width (10, 100, 1,000,
// 10,000 tasks after the root, all `prewarm: spawn`, so every task is a candidate), after 3 runs
// of history: a run's first EVENTS task starts, each taking its warm process as the orchestrator
// does, each its own loop turn. Prints per event: the median and 99th percentile of the time the
// plan spent deciding (forecasts, desires, the planner), the mean time it spent doing it (the
// prewarms' folders), the model's candidates, and the ratio of each median to the width-100
// one. Roughly flat is the goal.
//
//   bench_plan_events [--events N=500]
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/prefetch/prediction_service.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/store/history.h"
#include "daemon/store/registry.h"
#include "daemon/store/store.h"

namespace cd = chainctl::daemon;
using Clock = std::chrono::steady_clock;

namespace {

// Prewarms that are ready at once and never run: the planner's decisions cost what they cost.
class NullRunner : public cd::TaskRunner {
 public:
  Handle Start(chainctl::daemon::TaskLaunch, Done) override { return 0; }
  void Cancel(Handle) override {}
  size_t running() const override { return 0; }
  Handle Prewarm(cd::TaskLaunch, WarmEvents, std::string*) override { return ++next_; }
  WarmState Warm(Handle) const override { return {.alive = true, .ready_ms = 100, .age_ms = 200}; }
  cd::TaskResult StopWarm(Handle) override { return {}; }

 private:
  Handle next_ = 0;
};

struct Result {
  double median_us = 0, p99_us = 0, doing_us = 0, candidates = 0;
};

std::shared_ptr<chainctl::Chain> MakeChain(bool linear, int width) {
  auto chain = std::make_shared<chainctl::Chain>();
  chain->chain_id = "bench";
  for (int i = 0; i <= width; ++i) {
    chainctl::TaskSpec t;
    t.task_id = "t" + std::to_string(i);
    t.command = "run " + t.task_id;
    t.prewarm = chainctl::PrewarmLevel::kSpawn;
    if (i > 0) t.dependencies = {linear ? "t" + std::to_string(i - 1) : "t0"};
    chain->tasks.push_back(std::move(t));
  }
  return chain;
}

// A fresh store in `dir`/store; exits if it cannot be opened.
std::unique_ptr<cd::Store> OpenStore(const std::string& dir) {
  std::string err;
  auto store = cd::Store::Open({.dir = dir + "/store", .initial_map_size = 1 << 26}, &err);
  if (!store) {
    std::fprintf(stderr, "store: %s\n", err.c_str());
    std::exit(1);
  }
  return store;
}

// 3 runs of history of the chain made by MakeChain(_, width): every task, in order, 10 ms apart.
void ObserveHistory(cd::PredictionService* predictions, int width) {
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i <= width; ++i) {
      chainctl::HistoryRecord rec;
      rec.run_id = "h" + std::to_string(r);
      rec.chain_id = "bench";
      rec.task_id = "t" + std::to_string(i);
      rec.start_unix_ms = 1'000'000 + r * 10'000'000 + i * 10;
      rec.end_unix_ms = rec.start_unix_ms + 5;
      rec.status = "succeeded";
      predictions->Observe(rec);
    }
  }
}

// The prefetcher under test, opened: `chain` is the latest version of "bench", its prewarms go
// to `runner`, its clock reads *now.
std::unique_ptr<cd::Prefetcher> OpenPrefetcher(uv_loop_t* loop, const std::string& dir,
                                               std::shared_ptr<const chainctl::Chain> chain,
                                               cd::PredictionService* predictions,
                                               NullRunner* runner, const int64_t* now) {
  cd::PrefetchHooks hooks{.latest_chain = [chain](const std::string&) { return chain; },
                          .warm_launch =
                              [](const chainctl::TaskSpec& t, const std::string&) {
                                cd::TaskLaunch l;
                                l.argv = {"/bin/sh", "-c", t.command};
                                return l;
                              },
                          .worker_launch = nullptr,
                          .expected_hit = nullptr};
  cd::PrefetchOptions options;
  options.dir = dir + "/prewarm";
  options.cores = 64;
  auto prefetcher = std::make_unique<cd::Prefetcher>(loop, options, hooks, predictions, runner,
                                                     nullptr, nullptr, [now] { return *now; });
  std::string err;
  prefetcher->Open(&err);
  return prefetcher;
}

// The run's first `n` task starts, 10 ms apart, each taking its warm process and then planned
// in its own loop turn: the figures per event.
Result TimeEvents(cd::Prefetcher* prefetcher, uv_loop_t* loop,
                  const std::shared_ptr<const chainctl::Chain>& chain, int n, int64_t* now) {
  std::vector<double> us;
  uint64_t candidates = prefetcher->work().model.candidates;
  double doing = prefetcher->work().doing_s;
  std::string context;
  for (int i = 0; i < n; ++i) {
    *now += 10;
    prefetcher->TakeProcess("bench", chain, i, &context);
    prefetcher->TaskStarted("run", "bench", chain, i);
    double before = prefetcher->work().deciding_s;
    uv_run(loop, UV_RUN_NOWAIT);
    us.push_back((prefetcher->work().deciding_s - before) * 1e6);
  }
  candidates = prefetcher->work().model.candidates - candidates;
  doing = prefetcher->work().doing_s - doing;
  std::sort(us.begin(), us.end());
  return {.median_us = us[us.size() / 2],
          .p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)],
          .doing_us = doing * 1e6 / n,
          .candidates = static_cast<double>(candidates) / n};
}

// One shape and width, measured on a fresh store, model and prefetcher in `dir` (removed after).
Result Measure(bool linear, int width, int events, const std::string& dir) {
  std::filesystem::remove_all(dir);
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::unique_ptr<cd::Store> store = OpenStore(dir);
  cd::History history(store.get());
  cd::Registry registry(store.get());
  cd::PredictionOptions popts;
  popts.train_every = popts.train_interval_ms = uint64_t{1} << 40;
  auto predictions =
      std::make_unique<cd::PredictionService>(&loop, store.get(), &history, &registry, popts);
  std::shared_ptr<const chainctl::Chain> chain = MakeChain(linear, width);
  ObserveHistory(predictions.get(), width);
  NullRunner runner;
  int64_t now = 2'000'000'000;
  auto prefetcher = OpenPrefetcher(&loop, dir, chain, predictions.get(), &runner, &now);
  Result result = TimeEvents(prefetcher.get(), &loop, chain, std::min(events, width + 1), &now);
  prefetcher->Shutdown();
  predictions->Shutdown();
  uv_run(&loop, UV_RUN_DEFAULT);
  prefetcher.reset();
  predictions.reset();
  uv_loop_close(&loop);
  std::filesystem::remove_all(dir);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int events = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--events") == 0) events = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/tmp/chainctl-plan-events.XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  std::string dir = tmpl;
  std::printf("plan time per event: the first %d task starts of a run, each its own loop turn\n",
              events);
  std::printf("  %-8s %7s %14s %14s %12s %14s %9s\n", "shape", "width", "deciding p50",
              "deciding p99", "doing mean", "candidates/ev", "vs w=100");
  for (bool linear : {true, false}) {
    double base = 0;
    for (int width : {10, 100, 1000, 10'000}) {
      Result r = Measure(linear, width, events, dir + "/run");
      if (width == 100) base = r.median_us;
      std::printf("  %-8s %7d %11.1f us %11.1f us %9.1f us %14.1f %8.2fx\n",
                  linear ? "linear" : "fan-out", width, r.median_us, r.p99_us, r.doing_us,
                  r.candidates, base > 0 ? r.median_us / base : 1.0);
    }
  }
  std::printf("  (width 10: a run of 11 starts, its forecasts shorter)\n");
  std::filesystem::remove_all(dir);
  return 0;
}
