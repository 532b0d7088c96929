// The prefetcher's decisions, one at a time: what it prewarms, when, within which budgets, what
// it stops, and what it counts, and how much planning an event costs. The model is a real
// PredictionService (over a store in a temp dir) fed history records online; the runner is a
// fake that only records prewarms and stops; the clock is fake. Events go through the
// prefetcher's entry points; its plans run on the loop, one per turn (Settle runs the turn);
// Wake plans again as its own timer would (that timer waits in real time, so no test waits for
// it). No sleeps, no timing thresholds.
#include "daemon/prefetch/prefetcher.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

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
    return {.alive = true, .ready_ms = kReadyMs, .age_ms = 2 * kReadyMs};
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
    if (At(handle).events.ready) At(handle).events.ready(kReadyMs);
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
TaskSpec Spawn(const std::string& task_id) {
  TaskSpec task;
  task.task_id = task_id;
  task.command = "run " + task_id;
  task.prewarm = PrewarmLevel::kSpawn;
  return task;
}

// A task that says `prewarm: off`.
TaskSpec Off(const std::string& task_id) {
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
  std::map<std::string, Names> told_;  // by run: the starts told
  int64_t now_ = kNow;
  int64_t history_ms_ = kHistoryStart;
  int observed_runs_ = 0;
};

// --- regressions ---

// Reconcile skipped a due candidate whenever the process budget was full, before Start (and
// MakeRoom in it) could evict a clearly worse idle entry: with a budget of 1, the branch that
// history used to take kept the only slot for ever.
TEST_F(PrefetcherTest, ADueCandidateReplacesAClearlyWorseWarmEntryWhenTheBudgetIsFull) {
  std::shared_ptr<const Chain> chain =
      Define("route", {Spawn("router"), Spawn("a"), Spawn("b"), Spawn("c")});
  ObserveRouterRuns("route", {{"b", 4}, {"a", 1}, {"c", 1}});
  MakePrefetcher(Options(1));
  Started("r1", "route", {"router"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"b"});

  ObserveRouterRuns("route", {{"a", 40}});  // now the router nearly always takes a
  now_ += 1000;
  Started("r2", "route", {"router"});

  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"b", "a"}));
  EXPECT_EQ(runner_.stopped, Names{"b"});
  EXPECT_EQ(Status()["wasted"]["prewarms"], 1);
  EXPECT_EQ(Take("route", "a"), runner_.HandleOf("a"));
  EXPECT_EQ(Status()["hits"], 1);
  EXPECT_EQ(Status()["misses"], 0);
}

// Plan clamped the need of a chain expected next, and already overdue, to now: its tasks
// beyond the first slid with the clock, never came due, and held room for ever, so with a
// budget of 1 a running chain's due candidates were never prewarmed.
TEST_F(PrefetcherTest, AnOverdueChainHoldsNoRoomFromADueCandidateOfARunningChain) {
  Define("x", {Off("x1"), Spawn("x2")});
  std::shared_ptr<const Chain> y =
      Define("y", {Spawn("y1"), Spawn("y2"), Spawn("y3"), Spawn("y4")});
  // y and x alternate, 20 s apart. In y, y2 comes 100 ms after y1, then y3 (3 runs in 5) or y4
  // 100 ms later; in x, x2 (never prewarmed yet: its start-up is assumed) 5 s after x1.
  for (int i = 0; i < 20; ++i) {
    int64_t t = kHistoryStart + i * 40'000;
    ObserveRun("y", t, {{"y1", 0}, {"y2", 100}, {i % 5 < 3 ? "y3" : "y4", 200}});
    ObserveRun("x", t + 20'000, {{"x1", 0}, {"x2", 5'000}});
  }
  MakePrefetcher(Options(1));
  Ended("y0", "y", now_ - 40'000);
  Started("ry", "y", {"y1"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"y2"});

  // A minute later y2 starts, x (expected 20 s after y1 started) is overdue, and y3 is due.
  now_ += 60'000;
  ASSERT_EQ(Take("y", "y2"), runner_.HandleOf("y2"));
  Started("ry", "y", {"y1", "y2"});

  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"y2", "y3"}));
  // x2 is still wanted, first in the queue (it scores above y3), and never due: its need
  // slides with the clock. Holding room for it would keep y3 out.
  Json queue = Status()["queue"];
  ASSERT_FALSE(queue.empty());
  EXPECT_EQ(queue[0]["task_id"], "x2");
  EXPECT_GT(queue[0]["start_in_ms"], 0);
}

// --- when ---

TEST_F(PrefetcherTest, ACandidateIsStartedNoEarlierThanItsNeedLessStartUpAndMargin) {
  std::shared_ptr<const Chain> chain = TwoTasks("slow", Spawn("s2"), 10'000);
  MakePrefetcher(Options(4));
  Started("r", "slow", {"s1"});
  // Needed 10 s after s1 started; its start-up is assumed (500 ms), the margin is 50 ms.
  EXPECT_TRUE(runner_.PrewarmedTasks().empty());
  ASSERT_EQ(Status()["queue"].size(), 1u);
  EXPECT_EQ(Status()["queue"][0]["start_in_ms"], 9450);

  now_ += 9449;
  PlanAgain();
  EXPECT_TRUE(runner_.PrewarmedTasks().empty());

  now_ += 1;
  PlanAgain();
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
  EXPECT_TRUE(Status()["queue"].empty());
}

// --- measurements kept across restarts ---

TEST_F(PrefetcherTest, MeasuredStartUpsOutliveARestart) {
  std::shared_ptr<const Chain> chain = TwoTasks("slow", Spawn("s2"), 10'000);
  PrefetchOptions options = Options(4);
  options.measurements_file = tmp_.path() + "/prefetch.json";
  MakePrefetcher(options);
  Started("r1", "slow", {"s1"});
  now_ += 9450;
  PlanAgain();
  ASSERT_EQ(Take("slow", "s2"), runner_.HandleOf("s2"));  // its start-up measured: 120 ms
  prefetcher_->Shutdown();
  uv_run(&loop_, UV_RUN_DEFAULT);

  MakePrefetcher(options);  // a restarted chaind: nothing warm, nothing counted yet
  now_ += 60'000;
  Started("r2", "slow", {"s1"});
  ASSERT_EQ(Status()["queue"].size(), 1u);
  EXPECT_EQ(Status()["queue"][0]["start_in_ms"], 10'000 - 120 - 50);
  EXPECT_EQ(Status()["hits"], 0);
}

TEST_F(PrefetcherTest, TheMeasurementsOfTheTasksSeenLastAreKept) {
  PrefetchOptions options = Options(4);
  options.measurements_file = tmp_.path() + "/prefetch.json";
  options.measurements_kept = 2;
  MakePrefetcher(options);
  // Three tasks started, a second apart: each start is measured (a gap needs two starts).
  for (const char* task : {"t1", "t2", "t3"}) {
    std::shared_ptr<const Chain> chain = Define(task, {Spawn(task)});
    for (int i = 0; i < 2; ++i) {
      Started(std::string(task) + std::to_string(i), task, {task});
      now_ += 1000;
    }
  }
  prefetcher_->Shutdown();

  Json kept = Json::parse(testing::ReadFileOrDie(options.measurements_file));
  ASSERT_EQ(kept["tasks"].size(), 2u);
  std::vector<std::string> tasks;
  for (const auto& [key, task] : kept["tasks"].items()) tasks.push_back(task["task_id"]);
  std::sort(tasks.begin(), tasks.end());
  EXPECT_EQ(tasks, (Names{"t2", "t3"}));
}

TEST_F(PrefetcherTest, AnUnreadableMeasurementsFileIsIgnored) {
  std::shared_ptr<const Chain> chain = TwoTasks("slow", Spawn("s2"), 10'000);
  PrefetchOptions options = Options(4);
  options.measurements_file = tmp_.path() + "/prefetch.json";
  for (const char* bad : {"not json", R"({"format": 2, "tasks": {}})",
                          R"({"format": 1, "tasks": {"k": {"chain_id": 5}}})",
                          R"({"format": 1, "tasks": {"k": {"chain_id": "slow", "task_id": "s2",
                              "level": "spawn", "seen_ms": 1, "rss_kb": 1, "staged_bytes": 0,
                              "startups": ["120"], "gaps": [], "cold_ms": [], "warm_ms": []}}})"}) {
    tmp_.WriteFile("prefetch.json", bad);
    MakePrefetcher(options);
    Started("r", "slow", {"s1"});
    ASSERT_EQ(Status()["queue"].size(), 1u) << bad;
    EXPECT_EQ(Status()["queue"][0]["start_in_ms"], 9450) << bad;  // the start-up assumed
    prefetcher_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
}

// --- budgets ---

TEST_F(PrefetcherTest, TheProcessBudgetIsNeverExceededWhateverTheCandidates) {
  std::vector<TaskSpec> tasks{Spawn("router")};
  std::vector<Branch> branches;
  for (char c = 'a'; c < 'i'; ++c) {
    tasks.push_back(Spawn(std::string(1, c)));
    branches.push_back({std::string(1, c), 3});
  }
  std::shared_ptr<const Chain> chain = Define("fan", tasks);
  ObserveRouterRuns("fan", branches);  // 8 branches, equally likely
  MakePrefetcher(Options(3));
  for (const char* run : {"r1", "r2", "r3"}) {
    Started(run, "fan", {"router"});
    now_ += 10;
  }
  // Those runs end (they never took what was warm: the branches seen last, f, g and h), and
  // history moves to two others: they replace two idle entries in the next run, within the
  // budget.
  for (const char* run : {"r1", "r2", "r3"}) Ended(run, "fan", now_ - 10);
  ObserveRouterRuns("fan", {{"a", 30}, {"b", 30}});
  Started("r4", "fan", {"router"});

  EXPECT_EQ(runner_.max_alive, 3u);
  EXPECT_EQ(runner_.Alive(), 3u);
  EXPECT_EQ(Status()["warm"]["processes"], 3);
  EXPECT_GT(runner_.PrewarmedTasks().size(), 3u);  // some were replaced
  EXPECT_FALSE(Status()["queue"].empty());         // more were wanted than the budget allows
}

TEST_F(PrefetcherTest, TheMemoryBudgetIsNeverExceeded) {
  std::vector<TaskSpec> tasks{Spawn("router")};
  for (const char* id : {"a", "b", "c", "d"}) {
    tasks.push_back(Spawn(id));
    tasks.back().resource_requirements.memory_bytes = uint64_t{1} << 30;
  }
  std::shared_ptr<const Chain> chain = Define("big", tasks);
  ObserveRouterRuns("big", {{"a", 3}, {"b", 3}, {"c", 3}, {"d", 3}});
  PrefetchOptions options = Options(8);
  options.max_memory_bytes = (uint64_t{5} << 30) / 2;  // 2.5 GiB: room for two
  options.cost_ms_per_mb_s = 0;                        // holding memory costs nothing
  MakePrefetcher(options);
  Started("r", "big", {"router"});

  EXPECT_EQ(runner_.PrewarmedTasks().size(), 2u);
  EXPECT_EQ(Status()["warm"]["memory_bytes"], uint64_t{2} << 30);
  EXPECT_EQ(Status()["queue"].size(), 2u);
}

// --- what is never prewarmed ---

// Not even its inputs.files are staged, though a stager is there.
TEST_F(PrefetcherTest, ATaskThatSaysPrewarmOffIsNeverPrewarmedNorCountedAsAMiss) {
  TaskSpec off = Off("s2");
  off.input_files = {tmp_.WriteFile("data/a.csv", "1,2\n")};
  std::shared_ptr<const Chain> chain = TwoTasks("c", off, 100);
  stager_ = std::make_unique<InputStager>(InputCacheOptions{.dir = tmp_.path() + "/cache"});
  MakePrefetcher(Options(4), stager_.get());
  Started("r", "c", {"s1"});

  EXPECT_TRUE(runner_.PrewarmedTasks().empty());
  EXPECT_TRUE(Status()["queue"].empty());
  EXPECT_TRUE(Status()["pool"].empty());
  EXPECT_EQ(Status()["prewarms"], 0);
  EXPECT_EQ(Take("c", "s2"), 0u);
  EXPECT_EQ(Status()["misses"], 0);
}

TEST_F(PrefetcherTest, ATaskThatAsksForAGpuIsNeverSpawnedAhead) {
  TaskSpec gpu = Spawn("s2");
  gpu.resource_requirements.gpu = 1;
  std::shared_ptr<const Chain> chain = TwoTasks("c", gpu, 100);
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});

  EXPECT_TRUE(runner_.PrewarmedTasks().empty());
  EXPECT_EQ(Take("c", "s2"), 0u);
  EXPECT_EQ(Status()["misses"], 0);
}

TEST_F(PrefetcherTest, ADisabledPrefetcherPrewarmsAndCountsNothing) {
  std::shared_ptr<const Chain> chain = TwoTasks("c", Spawn("s2"), 100);
  PrefetchOptions options = Options(4);
  options.enabled = false;
  MakePrefetcher(options);
  Ended("r0", "c", now_ - 60'000);
  Started("r", "c", {"s1"});

  EXPECT_TRUE(runner_.PrewarmedTasks().empty());
  EXPECT_EQ(Take("c", "s2"), 0u);
  Json status = Status();
  EXPECT_EQ(status["enabled"], false);
  EXPECT_EQ(status["hits"], 0);
  EXPECT_EQ(status["misses"], 0);
  EXPECT_EQ(status["prewarms"], 0);
  EXPECT_TRUE(status["queue"].empty());
}

// --- hits and misses ---

TEST_F(PrefetcherTest, ATakeOfAWarmProcessIsAHitAndAStartWithoutOneIsAMiss) {
  std::shared_ptr<const Chain> chain = TwoTasks("c", Spawn("s2"), 100);
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"s2"});

  std::string context_file;
  EXPECT_EQ(Take("c", "s2", &context_file), runner_.HandleOf("s2"));
  // In the prewarm's own folder, under the prefetcher's.
  EXPECT_TRUE(context_file.starts_with(tmp_.path() + "/prewarm/")) << context_file;
  EXPECT_TRUE(context_file.ends_with("/context.json")) << context_file;
  EXPECT_EQ(Status()["warm"]["processes"], 0);  // taken: gone from the pool

  EXPECT_EQ(Take("c", "s2"), 0u);  // nothing warm any more
  Json status = Status();
  EXPECT_EQ(status["hits"], 1);
  EXPECT_EQ(status["misses"], 1);
  EXPECT_EQ(status["startup_saved_ms"], kReadyMs);
  EXPECT_TRUE(runner_.stopped.empty());
}

TEST_F(PrefetcherTest, AStartWhoseLaunchChangedDoesNotTakeTheOldProcess) {
  std::shared_ptr<const Chain> chain = TwoTasks("c", Spawn("s2"), 100);
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"s2"});

  auto changed = std::make_shared<Chain>(*chain);   // a new version of the chain
  changed->tasks[1].command = "run s2 --new-flag";  // another argv: another process
  std::string context_file;
  EXPECT_EQ(prefetcher_->TakeProcess("c", changed, 1, &context_file), 0u);
  EXPECT_EQ(Status()["misses"], 1);
  EXPECT_EQ(Status()["warm"]["processes"], 1);  // the old one is still there
}

// --- waste ---

// The keep-alive of a task never seen twice is 60 s, clamped to the TTL (here 5 s).
TEST_F(PrefetcherTest, AnUnusedPrewarmIsStoppedAsWasteWhenItsKeepAliveEnds) {
  std::shared_ptr<const Chain> chain = Define("route", {Spawn("router"), Spawn("a"), Spawn("b")});
  ObserveRouterRuns("route", {{"a", 7}, {"b", 3}});
  PrefetchOptions options = Options(2);
  options.ttl_ms = 5000;
  MakePrefetcher(options);
  Started("r", "route", {"router"});
  ASSERT_EQ(runner_.PrewarmedTasks(), (Names{"a", "b"}));

  // The run takes a: b, which never runs with a, is no longer wanted.
  ASSERT_EQ(Take("route", "a"), runner_.HandleOf("a"));
  Started("r", "route", {"router", "a"});
  now_ += 4999;
  PlanAgain();
  EXPECT_TRUE(runner_.stopped.empty());
  ASSERT_EQ(Status()["pool"].size(), 1u);
  EXPECT_EQ(Status()["pool"][0]["expires_in_ms"], 1);

  now_ += 1;
  PlanAgain();
  EXPECT_EQ(runner_.stopped, Names{"b"});
  Json status = Status();
  EXPECT_EQ(status["wasted"]["prewarms"], 1);
  EXPECT_EQ(status["wasted"]["cpu_seconds"], 0.25);
  EXPECT_EQ(status["wasted"]["mb_seconds"], 200.0);  // 100 MiB for 2 s
  EXPECT_EQ(status["warm"]["processes"], 0);
}

// 1.5 × the 99th percentile of the gaps between a task's starts, but at least 1 s.
TEST_F(PrefetcherTest, AKeepAliveIsAtLeastOneSecond) {
  std::shared_ptr<const Chain> chain = Define("c", {Spawn("t")});
  MakePrefetcher(Options(4));
  for (const char* run : {"r1", "r2", "r3"}) {  // t starts every 10 ms
    Started(run, "c", {"t"});
    now_ += 10;
  }
  Json tasks = Status()["tasks"];
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["task_id"], "t");
  EXPECT_EQ(tasks[0]["keep_alive_ms"], 1000);
}

TEST_F(PrefetcherTest, APrewarmThatEndsByItselfIsWasteAndFreesItsRoom) {
  std::shared_ptr<const Chain> chain = TwoTasks("c", Spawn("s2"), 100);
  MakePrefetcher(Options(1));
  Started("r", "c", {"s1"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"s2"});

  runner_.End(runner_.HandleOf("s2"));
  EXPECT_EQ(Status()["wasted"]["prewarms"], 1);
  EXPECT_EQ(Status()["warm"]["processes"], 0);
  PlanAgain();  // still wanted: prewarmed again
  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"s2", "s2"}));
  EXPECT_TRUE(runner_.stopped.empty());
}

TEST_F(PrefetcherTest, ShutdownStopsEveryWarmProcessWithoutCountingWasteAndPrewarmsNoMore) {
  std::shared_ptr<const Chain> chain = Define("route", {Spawn("router"), Spawn("a"), Spawn("b")});
  ObserveRouterRuns("route", {{"a", 5}, {"b", 5}});
  MakePrefetcher(Options(4));
  Started("r1", "route", {"router"});
  ASSERT_EQ(runner_.PrewarmedTasks().size(), 2u);

  prefetcher_->Shutdown();
  EXPECT_EQ(runner_.Alive(), 0u);
  EXPECT_EQ(runner_.stopped.size(), 2u);
  EXPECT_EQ(Status()["wasted"]["prewarms"], 0);
  Started("r2", "route", {"router"});
  EXPECT_EQ(runner_.PrewarmedTasks().size(), 2u);
}

// The destructor shuts down; its timer is closed on the loop after the prefetcher is gone
// (a use after free under ASan or valgrind when the timer lived in the object).
TEST_F(PrefetcherTest, DestroyedWithoutShutdownItLeavesNothingOfItselfOnTheLoop) {
  MakePrefetcher(Options(4));
  prefetcher_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // the timer's close
  EXPECT_EQ(uv_loop_alive(&loop_), 0);
}

}  // namespace
}  // namespace chainctl::daemon
