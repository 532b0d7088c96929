// Shared by the ProcessRunner tests (process_runner*_test.cc) and the WatchedProcess tests:
// helpers that look at real processes, and the fixture that runs a ProcessRunner on a real libuv
// loop. Header-only (tests/CMakeLists.txt builds *_test.cc only). Waits are loop runs until
// `done` (bounded by a watchdog timer) or bounded polls; no fixed sleeps.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/exec/process_runner.h"
#include "tests/test_util.h"

namespace chainctl::daemon::runner_test {

using Kind = TaskResult::Kind;

// Only a broken runner makes a test wait this long.
inline constexpr auto kDeadline = std::chrono::seconds(60);

// chaind-exec, built with the tests (tests/CMakeLists.txt).
inline constexpr const char* kExecHelper = CHAINCTL_EXEC_HELPER;

// Entries of /proc/self/fd.
inline size_t OpenFdCount() {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Processes of group `pgid` that have not exited (zombies do not count: killed grandchildren
// are reparented to init, which reaps them when it does).
inline int LiveProcessesInGroup(pid_t pgid) {
  int live = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;  // gone meanwhile
    char state = 0;
    int ppid = 0, group = 0;
    if (sscanf(stat.c_str() + paren + 1, " %c %d %d", &state, &ppid, &group) != 3) continue;
    if (group == pgid && state != 'Z' && state != 'X') ++live;
  }
  return live;
}

// Polls `condition` until it holds or kDeadline passes.
inline bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// Writes its pid to ./pid (atomically) and leaves a background grandchild; then `rest`.
inline std::string WithGrandchild(const std::string& rest) {
  return "echo $$ > pid.tmp && mv pid.tmp pid; sleep 1000 & " + rest;
}

class ProcessRunnerTest : public ::testing::Test {
 protected:
  // As chaind does (ProcessRunner's contract): a task that does not read its stdin makes
  // the runner's writes fail with EPIPE instead of killing the test.
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    uv_timer_init(&loop_, &tick_);
    tick_.data = this;
    runner_ = std::make_unique<ProcessRunner>(&loop_, ProcessRunner::UnixMsClock{}, kExecHelper);
  }

  void TearDown() override {
    runner_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    int status = 0;
    EXPECT_LE(waitpid(-1, &status, WNOHANG), 0) << "a zombie was left";
  }

  TaskLaunch Launch(std::vector<std::string> argv) {
    TaskLaunch launch;
    launch.run_id = "run-1";
    launch.task_id = "task";
    launch.argv = std::move(argv);
    launch.env = {"PATH=/usr/bin:/bin"};
    launch.workdir = dir_.path();
    launch.log_path = dir_.path() + "/task.log";
    launch.kill_grace_ms = 200;
    return launch;
  }
  TaskLaunch Shell(const std::string& script) { return Launch({"/bin/sh", "-c", script}); }

  // Runs the loop until `condition` holds; fails the test (and returns) at kDeadline. With
  // `poll`, a 1 ms tick rechecks a condition on the world outside the loop; without, the
  // loop wakes only for the runner's events (and once at the deadline).
  void RunUntil(const std::function<bool()>& condition, bool poll = false) {
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    auto wake_ms = static_cast<uint64_t>(poll ? 1 : std::chrono::milliseconds(kDeadline).count());
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, wake_ms, wake_ms);
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "deadline passed";
        break;
      }
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_timer_stop(&tick_);
    uv_run(&loop_, UV_RUN_NOWAIT);  // the close callbacks of what ended
  }

  TaskResult Run(TaskLaunch launch) {
    std::optional<TaskResult> result;
    runner_->Start(std::move(launch), [&](TaskResult r) { result = std::move(r); });
    RunUntil([&] { return result.has_value(); });
    return result ? std::move(*result) : TaskResult{};
  }

  // Closes a handle of the test and lets the loop finish closing it.
  template <typename H>
  void CloseHandle(H* handle) {
    uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
  }

  // The pid in file `name` of the test's folder once a task has written it (by mv).
  pid_t WaitForPidFile(const std::string& name) {
    std::string path = dir_.path() + "/" + name;
    RunUntil([&] { return std::filesystem::exists(path); }, /*poll=*/true);
    return ReadPid(path);
  }

  testing::ScopedTempDir dir_;
  uv_loop_t loop_;
  uv_timer_t tick_;
  std::unique_ptr<ProcessRunner> runner_;
};

}  // namespace chainctl::daemon::runner_test
