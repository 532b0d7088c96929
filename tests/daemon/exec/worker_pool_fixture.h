// Shared by the WorkerPool tests (worker_pool*_test.cc): the fixture that runs a WorkerPool with
// real worker processes (tests/fixtures/workers/test_worker.cc, a small C++ program) on a real
// libuv loop. Header-only (tests/CMakeLists.txt builds *_test.cc only). Waits are loop runs
// until a condition holds, bounded by a deadline; no fixed sleeps and no timing thresholds.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/exec/worker_pool.h"
#include "tests/test_util.h"

namespace chainctl::daemon::pool_test {

using Json = nlohmann::json;
using Kind = TaskResult::Kind;

// Only a broken pool makes a test wait this long.
inline constexpr auto kDeadline = std::chrono::seconds(60);

// Built with the tests (tests/CMakeLists.txt).
inline constexpr const char* kTestWorker = CHAINCTL_TEST_WORKER;
inline constexpr const char* kExecHelper = CHAINCTL_EXEC_HELPER;

inline bool Gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

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

}  // namespace chainctl::daemon::pool_test
