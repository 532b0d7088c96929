// WorkerPool (worker_pool_fixture.h): which worker serves a request (reuse, keys, prewarms),
// keep-alive and max_idle, StopIdle, and the pool's destruction.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/daemon/exec/worker_pool_fixture.h"

namespace chainctl::daemon::pool_test {
namespace {

TEST_F(WorkerPoolTest, SequentialRunsOfOneKeyReuseTheWorker) {
  TaskResult first = Echo("k");
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_TRUE(first.cold);
  Json output = Json::parse(first.output);
  EXPECT_EQ(output["input"], Json({{"op", "echo"}}));
  EXPECT_EQ(output["count"], 1);
  EXPECT_EQ(first.bytes_out, first.output.size());
  EXPECT_GT(first.bytes_in, 0u);
  EXPECT_GT(first.start_unix_ms, 0);
  EXPECT_GE(first.end_unix_ms, first.start_unix_ms);
  EXPECT_EQ(pool_->idle("k"), 1u);
  EXPECT_EQ(pool_->busy(), 0u);

  TaskResult second = Echo("k");
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_FALSE(second.cold);
  EXPECT_EQ(second.startup_ms, 0);
  EXPECT_EQ(PidOf(second), PidOf(first));
  EXPECT_EQ(CountOf(second), 2);

  Json stats = pool_->Stats()["k"];
  EXPECT_EQ(stats["spawned"], 1);
  EXPECT_EQ(stats["reused"], 1);
  EXPECT_EQ(stats["requests"], 2);
  EXPECT_EQ(stats["idle"], 1);
  EXPECT_EQ(stats["busy"], 0);
}

TEST_F(WorkerPoolTest, DifferentKeysUseDifferentWorkers) {
  TaskResult a = Echo("a");
  TaskResult b = Echo("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(b.cold);
  EXPECT_NE(PidOf(a), PidOf(b));
  EXPECT_EQ(pool_->idle(), 2u);
}

TEST_F(WorkerPoolTest, ConcurrentRunsOfOneKeySpawnASecondWorker) {
  ASSERT_TRUE(Echo("k").ok());
  auto one = Start("k", Launch(), {{"op", "echo"}});
  auto two = Start("k", Launch(), {{"op", "echo"}});
  EXPECT_EQ(pool_->busy(), 2u);
  TaskResult first = Wait(one), second = Wait(two);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_FALSE(first.cold);  // took the idle worker
  EXPECT_TRUE(second.cold);
  EXPECT_NE(PidOf(first), PidOf(second));
  EXPECT_EQ(pool_->idle("k"), 2u);
}

TEST_F(WorkerPoolTest, PrewarmedWorkerServesTheFirstRunWarm) {
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("k", Launch(), 0, &err)) << err;
  EXPECT_EQ(pool_->idle("k"), 1u);
  TaskResult result = Echo("k");
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_FALSE(result.cold);
  EXPECT_EQ(result.startup_ms, 0);
  EXPECT_EQ(CountOf(result), 1);  // no request reached it before this one
  EXPECT_EQ(pool_->Stats()["k"]["spawned"], 1);
}

TEST_F(WorkerPoolTest, UnusedPrewarmIsStoppedAfterItsKeepAlive) {
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("k", Launch(), 50, &err)) << err;
  ASSERT_TRUE(RunUntil([&] { return !idle_stops_.empty(); }));
  EXPECT_EQ(pool_->idle(), 0u);
  ASSERT_EQ(idle_stops_.size(), 1u);
  EXPECT_EQ(idle_stops_[0].key, "k");
  EXPECT_TRUE(idle_stops_[0].never_used);
  EXPECT_GT(idle_stops_[0].rss_kb, 0u);
  EXPECT_EQ(pool_->Stats()["k"]["stopped_idle"], 1);
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, UsedWorkerIsStoppedAfterTheIdleTimeout) {
  WorkerPoolOptions options;
  options.idle_timeout_ms = 50;
  MakePool(options);
  TaskResult result = Echo("k");
  ASSERT_TRUE(result.ok()) << result.error;
  ASSERT_TRUE(RunUntil([&] { return !idle_stops_.empty(); }));
  EXPECT_FALSE(idle_stops_[0].never_used);
  EXPECT_TRUE(AllStopped());
  EXPECT_TRUE(Gone(PidOf(result)));
}

TEST_F(WorkerPoolTest, MaxIdleStopsTheLeastRecentlyUsed) {
  WorkerPoolOptions options;
  options.max_idle = 2;
  MakePool(options);
  pid_t a = PidOf(Echo("a"));
  pid_t b = PidOf(Echo("b"));
  EXPECT_EQ(PidOf(Echo("a")), a);  // now b is the least recently used
  pid_t c = PidOf(Echo("c"));
  EXPECT_EQ(pool_->idle(), 2u);
  EXPECT_EQ(pool_->idle("b"), 0u);
  ASSERT_TRUE(RunUntil([&] { return !idle_stops_.empty() && Gone(b); }));
  EXPECT_EQ(idle_stops_[0].key, "b");
  EXPECT_FALSE(idle_stops_[0].never_used);
  EXPECT_EQ(pool_->Stats()["b"]["evicted"], 1);
  EXPECT_FALSE(Gone(a));
  EXPECT_FALSE(Gone(c));
}

TEST_F(WorkerPoolTest, StopIdleStopsTheKeysIdleWorkers) {
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("a", Launch(), 0, &err));
  ASSERT_TRUE(pool_->Prewarm("a", Launch(), 0, &err));
  ASSERT_TRUE(pool_->Prewarm("b", Launch(), 0, &err));
  EXPECT_EQ(pool_->StopIdle("a"), 2u);
  EXPECT_EQ(pool_->idle(), 1u);
  EXPECT_EQ(pool_->idle("b"), 1u);
  EXPECT_EQ(pool_->StopIdle(""), 1u);
  EXPECT_TRUE(AllStopped());
  EXPECT_EQ(testing::LiveProcessesIn(dir_.path()), 0);
  EXPECT_TRUE(idle_stops_.empty());  // only expiries and max_idle call back
}

TEST_F(WorkerPoolTest, DestructorKillsAndReapsEveryWorker) {
  pid_t a = PidOf(Echo("a"));
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("b", Launch(), 0, &err));
  bool called = false;
  pool_->Run("c", Launch(), Request({{"op", "hang"}}), [&](TaskResult) { called = true; });
  ASSERT_TRUE(RunUntil([&] { return testing::LiveProcessesIn(dir_.path()) == 3; }));
  pool_.reset();
  EXPECT_TRUE(Gone(a));
  EXPECT_EQ(testing::LiveProcessesIn(dir_.path()), 0);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(called);
}

TEST_F(WorkerPoolTest, DoneMayRunTheNextRequestOnTheSameWorker) {
  std::optional<TaskResult> second;
  pid_t first_pid = 0;
  pool_->Run("k", Launch(), Request({{"op", "echo"}}), [&](TaskResult first) {
    first_pid = PidOf(first);
    pool_->Run("k", Launch(), Request({{"op", "echo"}}),
               [&](TaskResult result) { second = std::move(result); });
  });
  ASSERT_TRUE(RunUntil([&] { return second.has_value(); }));
  ASSERT_TRUE(second->ok()) << second->error;
  EXPECT_FALSE(second->cold);
  EXPECT_EQ(PidOf(*second), first_pid);
}

TEST_F(WorkerPoolTest, DoneMayDestroyThePool) {
  bool called = false;
  pool_->Run("k", Launch(), Request({{"op", "echo"}}), [&](TaskResult) {
    called = true;
    pool_.reset();
  });
  ASSERT_TRUE(RunUntil([&] { return called; }));
  EXPECT_EQ(testing::LiveProcessesIn(dir_.path()), 0);
}

TEST_F(WorkerPoolTest, LargeRequestToASlowReaderDoesNotBlockTheLoop) {
  std::string go = dir_.path() + "/go";
  std::string data(1 << 19, 'd');  // many pipe buffers
  auto slow = Start("slow", Launch({"--wait-for", go}), {{"op", "echo"}, {"data", data}});
  TaskResult other = Echo("other");  // served while the slow worker's stdin is full
  ASSERT_TRUE(other.ok()) << other.error;
  EXPECT_FALSE(slow->has_value());
  std::ofstream(go).put('\n');
  TaskResult result = Wait(slow);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_GT(result.bytes_in, data.size());
  EXPECT_EQ(Json::parse(result.output)["input"]["data"], data);
}

}  // namespace
}  // namespace chainctl::daemon::pool_test
