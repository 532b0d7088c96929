// WorkerPool with real worker processes (tests/fixtures/workers/test_worker.cc, a small C++
// program) on a real libuv loop. Waits are loop runs until a condition holds, bounded by a
// deadline; no fixed sleeps and no timing thresholds.
#include "daemon/exec/worker_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using Json = nlohmann::json;
using Kind = TaskResult::Kind;

// Only a broken pool makes a test wait this long.
constexpr auto kDeadline = std::chrono::seconds(60);

// Built with the tests (tests/CMakeLists.txt).
constexpr const char* kTestWorker = CHAINCTL_TEST_WORKER;
constexpr const char* kExecHelper = CHAINCTL_EXEC_HELPER;

bool Gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

struct IdleStop {
  std::string key;
  bool never_used = false;
  double idle_ms = 0;
  uint64_t rss_kb = 0;
};

class WorkerPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    // Wakes the loop now and then, so that RunUntil checks its deadline.
    uv_timer_init(&loop_, &tick_);
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, 5, 5);
    MakePool(WorkerPoolOptions{});
  }

  void TearDown() override {
    pool_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    int status = 0;
    EXPECT_LE(waitpid(-1, &status, WNOHANG), 0) << "a zombie was left";
    // A killed process that is not the reaped leader may take a moment to go (signals are
    // asynchronous, more so on a loaded machine): a bounded poll.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (testing::LiveProcessesIn(dir_.path()) != 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(testing::LiveProcessesIn(dir_.path()), 0) << "a worker was left running";
  }

  void MakePool(WorkerPoolOptions options) {
    pool_ = std::make_unique<WorkerPool>(&loop_, std::move(options));
    pool_->OnIdleStopped(
        [this](const std::string& key, bool never_used, double idle_ms, uint64_t rss_kb) {
          idle_stops_.push_back({key, never_used, idle_ms, rss_kb});
        });
  }

  // Runs the loop until `condition` holds; false after kDeadline.
  bool RunUntil(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

  TaskLaunch Launch(std::vector<std::string> args = {}) {
    TaskLaunch launch;
    launch.run_id = "run-1";
    launch.task_id = "task";
    launch.argv = {kTestWorker};
    launch.argv.insert(launch.argv.end(), args.begin(), args.end());
    launch.workdir = dir_.path();
    launch.log_path = dir_.path() + "/worker.log";
    launch.kill_grace_ms = 1000;
    return launch;
  }

  Json Request(Json input) {
    return {{"input", std::move(input)},
            {"task_id", "task"},
            {"run_id", "run-1"},
            {"workdir", dir_.path()}};
  }

  // Starts a request; its result lands in the returned slot.
  std::shared_ptr<std::optional<TaskResult>> Start(const std::string& key, const TaskLaunch& launch,
                                                   Json input) {
    auto slot = std::make_shared<std::optional<TaskResult>>();
    pool_->Run(key, launch, Request(std::move(input)), [slot](TaskResult result) {
      EXPECT_FALSE(slot->has_value()) << "done called twice";
      *slot = std::move(result);
    });
    return slot;
  }

  TaskResult Wait(const std::shared_ptr<std::optional<TaskResult>>& slot) {
    EXPECT_TRUE(RunUntil([&] { return slot->has_value(); }));
    return slot->value_or(TaskResult{});
  }

  TaskResult RunOne(const std::string& key, const TaskLaunch& launch, Json input) {
    return Wait(Start(key, launch, std::move(input)));
  }

  TaskResult Echo(const std::string& key) { return RunOne(key, Launch(), {{"op", "echo"}}); }

  static pid_t PidOf(const TaskResult& result) {
    Json output = Json::parse(result.output, nullptr, false);
    return output.is_object() ? output.value("pid", pid_t{0}) : 0;
  }

  static int CountOf(const TaskResult& result) {
    Json output = Json::parse(result.output, nullptr, false);
    return output.is_object() ? output.value("count", 0) : 0;
  }

  bool AllStopped() {
    return RunUntil([&] { return pool_->idle() == 0 && pool_->stopping() == 0; });
  }

  testing::ScopedTempDir dir_;
  uv_loop_t loop_{};
  uv_timer_t tick_{};
  std::unique_ptr<WorkerPool> pool_;
  std::vector<IdleStop> idle_stops_;
};

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

TEST_F(WorkerPoolTest, ErrorResponseFailsTheRequestAndKeepsTheWorker) {
  pid_t pid = PidOf(Echo("k"));
  TaskResult result = RunOne("k", Launch(), {{"op", "error"}});
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error, "worker error: bad input");
  EXPECT_EQ(PidOf(Echo("k")), pid);
}

TEST_F(WorkerPoolTest, ErrorResponseStopsTheWorkerWhenReuseAfterErrorIsOff) {
  WorkerPoolOptions options;
  options.reuse_after_error = false;
  MakePool(options);
  TaskResult result = RunOne("k", Launch(), {{"op", "error"}});
  EXPECT_EQ(result.error, "worker error: bad input");
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
}

TEST_F(WorkerPoolTest, WorkerExitingMidRequestFailsItWithItsStatus) {
  pid_t pid = PidOf(Echo("k"));
  TaskResult result = RunOne("k", Launch(), {{"op", "exit"}, {"code", 3}});
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.error, "worker died during the request: exited with status 3");
  EXPECT_TRUE(Gone(pid));
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
}

TEST_F(WorkerPoolTest, WorkerExitingZeroWithoutAnsweringIsNotASuccess) {
  TaskResult result = RunOne("k", Launch(), {{"op", "exit"}, {"code", 0}});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error, "worker died during the request: exited with status 0");
}

TEST_F(WorkerPoolTest, WorkerClosingStdoutMidRequestIsKilled) {
  TaskLaunch launch = Launch();
  launch.kill_grace_ms = 20;  // how long it may take to exit on its own
  TaskResult result = RunOne("k", launch, {{"op", "close_stdout"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(result.error,
            "worker died during the request: closed its stdout (killed by signal 9 (SIGKILL))");
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, GarbageResponseKillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "garbage"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error,
            "worker protocol error: the response is not a JSON object: this is not json "
            "(killed by signal 9 (SIGKILL))");
  EXPECT_EQ(pool_->idle(), 0u);
}

// Issue 15: a reply that is not UTF-8, or nests too deep, is a protocol error (it killed chaind
// once it was dumped or copied).
TEST_F(WorkerPoolTest, Issue15ResponseNotUtf8KillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "not_utf8"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error.substr(0, 63),
            "worker protocol error: the response is not valid UTF-8 at byte ");
  EXPECT_NE(result.error.find(" (0xff) (killed by signal 9"), std::string::npos) << result.error;
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, Issue15ResponseTooDeepKillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "deep"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error.substr(0, 64),
            "worker protocol error: the response nests deeper than 64 levels ");
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, ResponseWithAnotherIdKillsTheWorker) {
  auto slot = std::make_shared<std::optional<TaskResult>>();
  WorkerPool::Handle handle = pool_->Run("k", Launch(), Request({{"op", "wrong_id"}}),
                                         [slot](TaskResult result) { *slot = std::move(result); });
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error, "worker protocol error: the response's id is " +
                              std::to_string(handle + 1) + ", not " + std::to_string(handle) +
                              " (killed by signal 9 (SIGKILL))");
}

TEST_F(WorkerPoolTest, TimeoutKillsTheWorker) {
  TaskLaunch launch = Launch();
  launch.timeout_ms = 50;
  TaskResult result = RunOne("k", launch, {{"op", "hang"}});
  EXPECT_EQ(result.kind, Kind::kTimedOut);
  EXPECT_EQ(result.error, "timed out after 50ms");
  EXPECT_NE(result.signal, 0);
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, CancelKillsTheWorkerAndReportsLater) {
  auto slot = std::make_shared<std::optional<TaskResult>>();
  WorkerPool::Handle handle = pool_->Run("k", Launch(), Request({{"op", "hang"}}),
                                         [slot](TaskResult result) { *slot = std::move(result); });
  pool_->Cancel(handle);
  EXPECT_FALSE(slot->has_value());
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kCancelled);
  EXPECT_EQ(result.error, "cancelled");
  EXPECT_EQ(pool_->busy(), 0u);
  pool_->Cancel(handle);  // ended: nothing
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, ResponseOverMaxOutputKillsTheWorker) {
  TaskLaunch launch = Launch();
  launch.max_output_bytes = 1000;
  TaskResult small = RunOne("k", launch, {{"op", "big"}, {"size", 500}});
  ASSERT_TRUE(small.ok()) << small.error;
  EXPECT_EQ(small.output, "\"" + std::string(500, 'x') + "\"");
  TaskResult result = RunOne("k", launch, {{"op", "big"}, {"size", 200'000}});
  EXPECT_EQ(result.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(result.error, "response is over the 1000 limit (max_output)");
  EXPECT_TRUE(result.output.empty());
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, SpawnFailureIsReportedLater) {
  TaskLaunch launch = Launch();
  launch.argv = {"/nonexistent/worker"};
  auto slot = Start("k", launch, {{"op", "echo"}});
  EXPECT_FALSE(slot->has_value());
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run /nonexistent/worker: No such file or directory");
  std::string err;
  EXPECT_FALSE(pool_->Prewarm("k", launch, 0, &err));
  EXPECT_EQ(err, "cannot run /nonexistent/worker: No such file or directory");
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, WorkerWithAMemoryLimitRunsThroughTheSpawnHelper) {
  WorkerPoolOptions options;
  options.exec_helper = kExecHelper;
  MakePool(options);
  TaskLaunch launch = Launch();
  launch.memory_limit_bytes = 1ull << 30;
#ifndef __SANITIZE_ADDRESS__  // ASan's shadow memory does not fit under a memory limit
  TaskResult result = RunOne("k", launch, {{"op", "echo"}});
  ASSERT_TRUE(result.ok()) << result.error;
  std::ifstream limits("/proc/" + std::to_string(PidOf(result)) + "/limits");
  std::string text((std::istreambuf_iterator<char>(limits)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("1073741824"), std::string::npos) << text;
#endif

  launch.argv = {"/nonexistent/worker"};
  TaskResult failed = RunOne("other", launch, {{"op", "echo"}});
  EXPECT_EQ(failed.kind, Kind::kSpawnFailed);
  EXPECT_EQ(failed.error, "cannot run /nonexistent/worker: No such file or directory");
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("other", launch, 0, &err));  // the helper ran: it fails later
  EXPECT_TRUE(RunUntil([&] { return pool_->idle("other") == 0 && pool_->stopping() == 0; }));
}

TEST_F(WorkerPoolTest, ResponseInSeveralChunksIsOneLine) {
  TaskResult result = RunOne("k", Launch(), {{"op", "chunked"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(CountOf(result), 1);
  EXPECT_EQ(pool_->idle("k"), 1u);
}

TEST_F(WorkerPoolTest, OutputBeyondTheResponseStopsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "extra"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
  EXPECT_NE(PidOf(Echo("k")), PidOf(result));
}

TEST_F(WorkerPoolTest, IdleWorkerThatWritesIsStopped) {
  TaskResult result = RunOne("k", Launch(), {{"op", "late_extra"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_TRUE(AllStopped());
  EXPECT_TRUE(Gone(PidOf(result)));
  EXPECT_TRUE(idle_stops_.empty());
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

TEST_F(WorkerPoolTest, ResponseJustBeforeExitingStillCounts) {
  TaskResult result = RunOne("k", Launch(), {{"op", "answer_exit"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_TRUE(RunUntil([&] { return Gone(PidOf(result)); }));
  EXPECT_EQ(pool_->idle(), 0u);
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
}  // namespace chainctl::daemon
