// The fixture of the prefetcher's tests (prefetcher_test.cc: its decisions; planning_work_test.cc:
// the work an event costs): a real PredictionService (over a store in a temp dir) fed history
// records online, a fake runner that only records prewarms and stops, a fake clock. Events go
// through the prefetcher's entry points; its plans run on the loop, one per turn (Settle runs
// the turn); Wake plans again as its own timer would (that timer waits in real time, so no test
// waits for it). No sleeps, no timing thresholds.
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/prefetch/prefetcher.h"
#include "tests/test_util.h"

namespace chainctl::daemon::testing_prefetch {

using Json = nlohmann::json;
using Handle = TaskRunner::Handle;
using Names = std::vector<std::string>;

constexpr int64_t kHistoryStart = 1'000'000'000;  // the history records' times start here
constexpr int64_t kNow = 2'000'000'000;           // the prefetcher's clock starts here
constexpr double kReadyMs = 120;                  // the fake's prewarms' measured start-up

// A runner that only prewarms: it records each prewarm and each stop. A prewarmed process is
// ready (its start-up measured) at once as Warm says, and says so (its `ready` event) when the
// test calls Ready; it is alive until stopped or ended by the test; one the prefetcher took
// stays alive here (its attempt would have it). `running` attempts: as the test sets.
class FakeRunner : public TaskRunner {
 public:
  struct Prewarmed {
    TaskLaunch launch;
    WarmEvents events;
    bool alive = true;
    bool ready = false;
  };

  Handle Start(TaskLaunch /*launch*/, Done /*done*/) override {
    ADD_FAILURE() << "the prefetcher never starts an attempt";
    return 0;
  }
  void Cancel(Handle /*handle*/) override {}
  size_t running() const override { return running_attempts; }

  // Handles are 1, 2, ... in prewarm order.
  Handle Prewarm(TaskLaunch launch, WarmEvents events, std::string* /*err*/) override {
    prewarmed_.push_back({std::move(launch), std::move(events)});
    max_alive = std::max(max_alive, Alive());
    return prewarmed_.size();
  }
  WarmState Warm(Handle handle) const override {
    if (!Known(handle) || !At(handle).alive) return {};
    return {.alive = true, .ready_ms = ready_ms, .age_ms = 2 * ready_ms};
  }
  TaskResult StopWarm(Handle handle) override {
    if (!Known(handle) || !At(handle).alive) return {};
    At(handle).alive = false;
    stopped.push_back(TaskOf(handle));
    return Cost();
  }

  // The prewarmed process `handle` ends by itself (it crashed): the runner says so, later.
  void End(Handle handle) {
    At(handle).alive = false;
    At(handle).events.ended(Cost());
  }
  // The prewarmed process `handle` blocked reading its input: the runner says so.
  void Ready(Handle handle) {
    At(handle).ready = true;
    if (At(handle).events.ready) At(handle).events.ready(ready_ms);
  }

  // The tasks prewarmed so far, in order.
  Names PrewarmedTasks() const {
    Names out;
    for (const Prewarmed& p : prewarmed_) out.push_back(p.launch.task_id);
    return out;
  }
  // The last prewarm of `task_id`; 0 if none.
  Handle HandleOf(const std::string& task_id) const {
    for (size_t i = prewarmed_.size(); i > 0; --i) {
      if (prewarmed_[i - 1].launch.task_id == task_id) return i;
    }
    return 0;
  }
  std::string TaskOf(Handle handle) const { return At(handle).launch.task_id; }
  size_t Alive() const {
    return static_cast<size_t>(std::count_if(prewarmed_.begin(), prewarmed_.end(),
                                             [](const Prewarmed& p) { return p.alive; }));
  }

  Names stopped;  // the tasks of the prewarms stopped, in order
  size_t max_alive = 0;
  size_t running_attempts = 0;
  double ready_ms = kReadyMs;  // the start-up its prewarms measure

 private:
  // What a stopped or ended prewarm cost: 0.25 CPU-s, 100 MiB for 2 s.
  static TaskResult Cost() {
    TaskResult cost;
    cost.cpu_s = 0.25;
    cost.max_rss_kb = 100 * 1024;
    cost.start_unix_ms = kNow;
    cost.end_unix_ms = kNow + 2000;
    return cost;
  }
  bool Known(Handle handle) const { return handle > 0 && handle <= prewarmed_.size(); }
  Prewarmed& At(Handle handle) { return prewarmed_.at(handle - 1); }
  const Prewarmed& At(Handle handle) const { return prewarmed_.at(handle - 1); }

  std::vector<Prewarmed> prewarmed_;
};

// A task that prewarms by spawning its process.
inline TaskSpec Spawn(const std::string& task_id) {
  TaskSpec task;
  task.task_id = task_id;
  task.command = "run " + task_id;
  task.prewarm = PrewarmLevel::kSpawn;
  return task;
}

// A task that says `prewarm: off`.
inline TaskSpec Off(const std::string& task_id) {
  TaskSpec task = Spawn(task_id);
  task.prewarm = PrewarmLevel::kOff;
  return task;
}

// A router's history: each of `branches` taken `runs` times after `router` (100 ms later).
struct Branch {
  std::string task_id;
  int runs = 0;
};

class PrefetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store", .initial_map_size = 1 << 24}, &err);
    ASSERT_TRUE(store_) << err;
    history_ = std::make_unique<History>(store_.get());
    registry_ = std::make_unique<Registry>(store_.get());
    // Online learning only: no training replaces the model during a test.
    PredictionOptions options;
    options.train_every = uint64_t{1} << 40;
    options.train_interval_ms = uint64_t{1} << 40;
    predictions_ = std::make_unique<PredictionService>(&loop_, store_.get(), history_.get(),
                                                       registry_.get(), options);
  }

  void TearDown() override {
    // As chaind does: Shutdown (it stops what is warm and closes the timer), the loop runs the
    // closes, then everything is freed.
    if (prefetcher_) prefetcher_->Shutdown();
    if (predictions_) predictions_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
    prefetcher_.reset();
    predictions_.reset();
    stager_.reset();  // after the loop: its trims ran on the thread pool
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // The options of a test: `max_warm` processes, memory plenty, cores enough that start-ups
  // never wait for each other (but in the tests of that).
  PrefetchOptions Options(size_t max_warm) const {
    PrefetchOptions options;
    options.dir = tmp_.path() + "/prewarm";
    options.max_warm = max_warm;
    options.max_memory_bytes = uint64_t{1} << 40;
    options.cores = 64;
    return options;
  }

  // `stager`: for the tests of staged inputs; none by default.
  void MakePrefetcher(PrefetchOptions options, InputStager* stager = nullptr) {
    PrefetchHooks hooks;
    hooks.latest_chain = [this](const std::string& chain_id) -> std::shared_ptr<const Chain> {
      auto it = chains_.find(chain_id);
      return it == chains_.end() ? nullptr : it->second;
    };
    hooks.warm_launch = [](const TaskSpec& task, const std::string& dir) {
      TaskLaunch launch;
      launch.task_id = task.task_id;
      launch.argv = {"/bin/sh", "-c", task.command};
      launch.env = {"PATH=/usr/bin:/bin", "CHAIN_WORKDIR=" + dir};
      launch.workdir = dir;
      return launch;
    };
    hooks.expected_hit = expected_hit_;
    told_.clear();
    prefetcher_ = std::make_unique<Prefetcher>(&loop_, std::move(options), std::move(hooks),
                                               predictions_.get(), &runner_, nullptr, stager,
                                               [this] { return now_; });
    std::string err;
    ASSERT_TRUE(prefetcher_->Open(&err)) << err;
  }

  // Defines `chain_id` (what latest_chain returns for it).
  std::shared_ptr<const Chain> Define(const std::string& chain_id, std::vector<TaskSpec> tasks) {
    auto chain = std::make_shared<Chain>();
    chain->chain_id = chain_id;
    chain->tasks = std::move(tasks);
    chains_[chain_id] = chain;
    return chain;
  }

  // Chain `chain_id`: s1, then `second` `gap_ms` later, as 5 runs of history (a minute apart)
  // show.
  std::shared_ptr<const Chain> TwoTasks(const std::string& chain_id, TaskSpec second,
                                        int64_t gap_ms) {
    std::string second_id = second.task_id;
    std::shared_ptr<const Chain> chain = Define(chain_id, {Spawn("s1"), std::move(second)});
    for (int i = 0; i < 5; ++i) {
      ObserveRun(chain_id, kHistoryStart + i * 60'000, {{"s1", 0}, {second_id, gap_ms}});
    }
    return chain;
  }

  // A run of `chain_id` in history, started at `start_ms`: each task started `offset` ms after.
  void ObserveRun(const std::string& chain_id, int64_t start_ms,
                  const std::vector<std::pair<std::string, int64_t>>& starts) {
    std::string run_id = chain_id + "-" + std::to_string(++observed_runs_);
    for (const auto& [task_id, offset] : starts) {
      predictions_->Observe(testing::SucceededRecord(run_id, chain_id, task_id, start_ms + offset));
    }
  }

  // Runs of a router chain: `router`, then 100 ms later one of `branches`, each as often as it
  // says; one run a minute from history_ms_ on.
  void ObserveRouterRuns(const std::string& chain_id, const std::vector<Branch>& branches) {
    for (const Branch& branch : branches) {
      for (int i = 0; i < branch.runs; ++i) {
        ObserveRun(chain_id, history_ms_ += 60'000, {{"router", 0}, {branch.task_id, 100}});
      }
    }
  }

  // The run `run_id` of `chain_id` has started `started` so far: the starts not told yet are
  // told, in order; then the loop turn runs (the plan).
  void Started(const std::string& run_id, const std::string& chain_id, const Names& started) {
    const std::shared_ptr<const Chain>& chain = chains_.at(chain_id);
    Names& told = told_[run_id];
    for (size_t i = told.size(); i < started.size(); ++i) {
      prefetcher_->TaskStarted(run_id, chain_id, chain, chain->FindTask(started[i]));
      told.push_back(started[i]);
    }
    Settle();
  }
  void Ended(const std::string& run_id, const std::string& chain_id, int64_t started_ms) {
    prefetcher_->RunEnded(run_id, chain_id, started_ms);
    Settle();
  }

  // A plan with nothing new: what the prefetcher's timer does when it fires.
  void PlanAgain() {
    prefetcher_->Wake();
    Settle();
  }
  void Settle() { uv_run(&loop_, UV_RUN_NOWAIT); }

  // Takes a warm process of `task_id` of `chain_id`, as the orchestrator does at its start.
  Handle Take(const std::string& chain_id, const std::string& task_id,
              std::string* context_file = nullptr) {
    const std::shared_ptr<const Chain>& chain = chains_.at(chain_id);
    std::string context;
    return prefetcher_->TakeProcess(chain_id, chain, chain->FindTask(task_id),
                                    context_file ? context_file : &context);
  }

  Json Status() const { return prefetcher_->Status(); }

  testing::ScopedTempDir tmp_;
  uv_loop_t loop_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<History> history_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<PredictionService> predictions_;
  FakeRunner runner_;
  std::unique_ptr<InputStager> stager_;
  std::unique_ptr<Prefetcher> prefetcher_;
  std::map<std::string, std::shared_ptr<const Chain>> chains_;
  // PrefetchHooks::expected_hit of the prefetchers MakePrefetcher makes (none by default).
  std::function<std::optional<bool>(const std::string&, const TaskSpec&)> expected_hit_;
  std::map<std::string, Names> told_;  // by run: the starts told
  int64_t now_ = kNow;
  int64_t history_ms_ = kHistoryStart;
  int observed_runs_ = 0;
};

}  // namespace chainctl::daemon::testing_prefetch
