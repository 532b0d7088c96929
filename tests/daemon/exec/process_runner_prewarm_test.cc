// ProcessRunner (process_runner_fixture.h): prewarming (level spawn): started ahead, blocked on
// its stdin, taken by Start, or stopped.
#include <gtest/gtest.h>
#include <signal.h>
#include <uv.h>

#include <filesystem>
#include <optional>
#include <string>

#include "tests/daemon/exec/process_runner_fixture.h"

namespace chainctl::daemon::runner_test {
namespace {

TEST_F(ProcessRunnerTest, PrewarmedProcessGetsItsInputOnlyWhenTaken) {
  // The task notes that it ran before reading (it must not act), then echoes its input.
  TaskLaunch warm =
      Shell("echo started > started; input=$(cat); echo \"$input\" > got; echo \"$input\"");
  std::optional<TaskResult> ended;
  std::optional<double> ready;
  std::string err;
  TaskRunner::Handle h = runner_->Prewarm(warm,
                                          {.ready = [&](double ms) { ready = ms; },
                                           .ended = [&](TaskResult r) { ended = std::move(r); }},
                                          &err);
  ASSERT_NE(h, 0u) << err;
  EXPECT_EQ(runner_->running(), 0u) << "a prewarm is not an attempt";
  RunUntil([&] { return ready.has_value(); });  // the runner says so: no polling here
  TaskRunner::WarmState state = runner_->Warm(h);
  EXPECT_TRUE(state.alive);
  EXPECT_GT(*state.ready_ms, 0);
  EXPECT_EQ(*state.ready_ms, *ready);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/started"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/got")) << "no input before it is taken";

  TaskLaunch claim = Launch({"/bin/false"});  // argv of a claim is not used: the process is there
  claim.stdin_file = dir_.WriteFile("input.json", R"({"n": 1})");
  claim.log_path = dir_.path() + "/attempt-1.log";
  claim.warm = h;
  TaskResult result = Run(std::move(claim));
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "{\"n\": 1}\n");
  EXPECT_FALSE(result.cold);
  EXPECT_EQ(result.bytes_in, 8u);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/attempt-1.log")) << "the log moved";
  EXPECT_FALSE(ended.has_value()) << "`ended` is only for prewarms nobody took";
  EXPECT_FALSE(runner_->Warm(h).alive);
}

TEST_F(ProcessRunnerTest, StopWarmKillsAndReportsTheCost) {
  std::optional<TaskResult> ended;
  std::string err;
  TaskRunner::Handle h =
      runner_->Prewarm(Shell("echo $$ > pid.tmp && mv pid.tmp pid; cat"),
                       {.ready = nullptr, .ended = [&](TaskResult r) { ended = r; }}, &err);
  ASSERT_NE(h, 0u) << err;
  pid_t pid = WaitForPidFile("pid");
  RunUntil([&] { return runner_->Warm(h).ready_ms.has_value(); }, /*poll=*/true);
  TaskResult cost = runner_->StopWarm(h);
  EXPECT_GT(cost.max_rss_kb, 0);
  EXPECT_GE(cost.end_unix_ms, cost.start_unix_ms);
  EXPECT_EQ(kill(pid, 0), -1) << "killed and reaped";
  EXPECT_FALSE(runner_->Warm(h).alive);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(ended.has_value());
}

TEST_F(ProcessRunnerTest, PrewarmThatEndsByItselfIsReportedAndCannotBeTaken) {
  std::optional<TaskResult> ended;
  std::string err;
  TaskRunner::Handle h = runner_->Prewarm(
      Shell("exit 3"), {.ready = nullptr, .ended = [&](TaskResult r) { ended = std::move(r); }},
      &err);
  ASSERT_NE(h, 0u) << err;
  RunUntil([&] { return ended.has_value(); });
  EXPECT_EQ(ended->exit_code, 3);
  // Start with a dead prewarm spawns anew.
  TaskLaunch claim = Shell("printf fresh");
  claim.warm = h;
  TaskResult result = Run(std::move(claim));
  EXPECT_EQ(result.output, "fresh");
  EXPECT_TRUE(result.cold);
}

TEST_F(ProcessRunnerTest, DestroyingTheRunnerKillsPrewarmedProcesses) {
  std::string err;
  TaskRunner::Handle h =
      runner_->Prewarm(Shell("echo $$ > pid.tmp && mv pid.tmp pid; cat"), {}, &err);
  ASSERT_NE(h, 0u) << err;
  pid_t pid = WaitForPidFile("pid");
  runner_.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(kill(pid, 0), -1);
}

TEST_F(ProcessRunnerTest, PrewarmOfAMissingProgramFails) {
  std::string err;
  EXPECT_EQ(runner_->Prewarm(Launch({"/no/such/program"}), {}, &err), 0u);
  EXPECT_NE(err.find("/no/such/program"), std::string::npos) << err;
}

}  // namespace
}  // namespace chainctl::daemon::runner_test
