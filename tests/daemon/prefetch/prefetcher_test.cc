// The prefetcher's decisions, one at a time: what it prewarms, when, within which budgets, what
// it stops, and what it counts (the fixture: prefetcher_fixture.h).
#include <gtest/gtest.h>

#include "tests/daemon/prefetch/prefetcher_fixture.h"

namespace chainctl::daemon::testing_prefetch {
namespace {

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

// --- start-ups ---

// With CPU short (one core, nothing else running), the due prewarms start one at a time in the
// order they are needed, each when the one before is ready (the runner says so), so the first
// needed is ready first instead of all sharing the core.
TEST_F(PrefetcherTest, PrewarmsStartInNeedOrderOnePerFreeCore) {
  std::shared_ptr<const Chain> chain =
      Define("line", {Spawn("s1"), Spawn("s2"), Spawn("s3"), Spawn("s4")});
  for (int i = 0; i < 5; ++i) {
    ObserveRun("line", kHistoryStart + i * 60'000,
               {{"s1", 0}, {"s2", 100}, {"s3", 200}, {"s4", 300}});
  }
  PrefetchOptions options = Options(8);
  options.cores = 1;
  MakePrefetcher(options);
  Started("r", "line", {"s1"});  // s2, s3 and s4 are all due: their start-up (500 ms) > 300 ms
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
  EXPECT_EQ(Status()["queue"].size(), 2u);

  runner_.Ready(runner_.HandleOf("s2"));
  Settle();
  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"s2", "s3"}));
  runner_.Ready(runner_.HandleOf("s3"));
  Settle();
  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"s2", "s3", "s4"}));
}

TEST_F(PrefetcherTest, ARunningTaskTakesItsCoreFromThePrewarms) {
  std::shared_ptr<const Chain> chain = Define("line", {Spawn("s1"), Spawn("s2"), Spawn("s3")});
  for (int i = 0; i < 5; ++i) {
    ObserveRun("line", kHistoryStart + i * 60'000, {{"s1", 0}, {"s2", 100}, {"s3", 200}});
  }
  PrefetchOptions options = Options(8);
  options.cores = 2;
  MakePrefetcher(options);
  runner_.running_attempts = 1;  // s1 runs: one core is free
  Started("r", "line", {"s1"});
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
}

// A task whose measured start-up is below what a prewarm costs (10 ms) is not prewarmed again,
// and its starts are no misses.
TEST_F(PrefetcherTest, ATaskThatStartsUpInAFewMillisecondsIsNotPrewarmed) {
  std::shared_ptr<const Chain> chain = TwoTasks("c", Spawn("s2"), 100);
  runner_.ready_ms = 3;
  MakePrefetcher(Options(4));
  Started("r1", "c", {"s1"});
  ASSERT_EQ(runner_.PrewarmedTasks(), Names{"s2"});    // not measured yet: worth a try
  ASSERT_EQ(Take("c", "s2"), runner_.HandleOf("s2"));  // measured: 3 ms
  Ended("r1", "c", now_);

  now_ += 60'000;
  Started("r2", "c", {"s1"});
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
  const Json status = Status();  // kept: a range-for over Status()["queue"] would dangle
  for (const Json& queued : status["queue"]) EXPECT_NE(queued["task_id"], "s2");
  EXPECT_EQ(Take("c", "s2"), 0u);
  EXPECT_EQ(Status()["misses"], 0);
}

// --- the model ---

// A training swaps in a new model (here one trained on an empty store: it knows nothing) while a
// run goes: the run's context is rebuilt for it from the run's starts, and its forecasts come
// from it (the DAG's prior alone: s3 is next, now).
TEST_F(PrefetcherTest, AModelSwappedInMidRunIsUsedForTheRestOfIt) {
  TaskSpec s2 = Spawn("s2"), s3 = Spawn("s3");
  s2.dependencies = {"s1"};
  s3.dependencies = {"s2"};
  Define("line", {Spawn("s1"), s2, s3});
  for (int i = 0; i < 5; ++i) {
    ObserveRun("line", kHistoryStart + i * 60'000, {{"s1", 0}, {"s2", 10'000}, {"s3", 20'000}});
  }
  MakePrefetcher(Options(4));
  Started("r", "line", {"s1"});
  ASSERT_TRUE(runner_.PrewarmedTasks().empty());  // s2 is 10 s away
  uint64_t version = predictions_->model_version();
  bool trained = false;
  predictions_->Train([&trained](const TrainResult& r) { trained = r.ok; });
  while (!trained) uv_run(&loop_, UV_RUN_ONCE);
  ASSERT_NE(predictions_->model_version(), version);

  Started("r", "line", {"s1", "s2"});
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s3"});
  EXPECT_EQ(prefetcher_->work().forecasts, 2u);  // r after each start (the second on the new model)
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
}  // namespace chainctl::daemon::testing_prefetch
