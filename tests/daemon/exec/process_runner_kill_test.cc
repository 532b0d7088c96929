// ProcessRunner (process_runner_fixture.h): killing (timeout, Cancel, SIGKILL after the grace
// period), the process group and what left it, and destroying the runner.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <optional>
#include <string>

#include "tests/daemon/exec/process_runner_fixture.h"

namespace chainctl::daemon::runner_test {
namespace {

TEST_F(ProcessRunnerTest, TimeoutKillsTheWholeGroup) {
  TaskLaunch launch = Shell("sleep 1000 & sleep 1000");
  launch.timeout_ms = 300;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kTimedOut);
  EXPECT_EQ(result.error, "timed out after 300ms");
  EXPECT_EQ(result.signal, SIGTERM);
  // Where the timeout came is up to the scheduler, so the processes are found by their
  // directory rather than by a pid file the task may not have written yet.
  EXPECT_TRUE(Eventually([&] { return testing::LiveProcessesIn(dir_.path()) == 0; }));
}

TEST_F(ProcessRunnerTest, CancelKillsTheGroup) {
  std::optional<TaskResult> result;
  TaskRunner::Handle handle = runner_->Start(Shell(WithGrandchild("sleep 1000")),
                                             [&](TaskResult r) { result = std::move(r); });
  EXPECT_NE(handle, 0u);
  pid_t pgid = WaitForPidFile("pid");
  ASSERT_GT(pgid, 0);
  runner_->Cancel(handle);
  EXPECT_FALSE(result.has_value()) << "done was called inside Cancel";
  RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(result->kind, Kind::kCancelled);
  EXPECT_EQ(result->error, "cancelled");
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
  runner_->Cancel(handle);  // ended: nothing happens
  runner_->Cancel(12345);   // unknown: nothing happens
}

TEST_F(ProcessRunnerTest, CancelEscalatesToSigkillWhenSigtermIsIgnored) {
  std::optional<TaskResult> result;
  TaskLaunch launch = Shell("trap '' TERM; " + WithGrandchild("sleep 1000"));
  launch.kill_grace_ms = 100;
  TaskRunner::Handle handle =
      runner_->Start(std::move(launch), [&](TaskResult r) { result = std::move(r); });
  pid_t pgid = WaitForPidFile("pid");
  ASSERT_GT(pgid, 0);
  runner_->Cancel(handle);
  RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(result->kind, Kind::kCancelled);
  EXPECT_EQ(result->signal, SIGKILL);
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
}

TEST_F(ProcessRunnerTest, BackgroundChildHoldingStdoutDoesNotHoldTheTask) {
  TaskResult result = Run(Shell(WithGrandchild("echo done")));
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "done\n");
  pid_t pgid = ReadPid(dir_.path() + "/pid");
  ASSERT_GT(pgid, 0);
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
}

TEST_F(ProcessRunnerTest, ProcessThatLeftTheGroupHoldsStdoutOnlyForTheGracePeriod) {
  // It waits until the escaped process leads its own group, which the leader's exit then
  // cannot reach.
  TaskLaunch launch = Shell(
      "setsid sleep 1000 & pid=$!; "
      "while [ \"$(cut -d' ' -f5 /proc/$pid/stat)\" != $pid ]; do :; done; "
      "echo $pid > escaped; echo done");
  launch.kill_grace_ms = 100;
  TaskResult result = Run(launch);
  pid_t escaped = ReadPid(dir_.path() + "/escaped");
  ASSERT_GT(escaped, 0);
  EXPECT_EQ(kill(escaped, SIGKILL), 0) << "it left the group, so it was not killed";
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "done\n");
}

TEST_F(ProcessRunnerTest, DestroyingTheRunnerKillsAndReapsWithoutDone) {
  bool called = false;
  runner_->Start(Shell(WithGrandchild("sleep 1000")), [&](TaskResult) { called = true; });
  pid_t pgid = WaitForPidFile("pid");
  ASSERT_GT(pgid, 0);
  runner_->Start(Launch({"/no/such/program"}), [&](TaskResult) { called = true; });
  runner_.reset();
  int status = 0;
  errno = 0;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "the task was not reaped";
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(called);
}

TEST_F(ProcessRunnerTest, DoneMayDestroyTheRunner) {
  std::optional<TaskResult> result;
  runner_->Start(Shell("echo hi"), [&](TaskResult r) {
    result = std::move(r);
    runner_.reset();
  });
  RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(result->output, "hi\n");
}

}  // namespace
}  // namespace chainctl::daemon::runner_test
