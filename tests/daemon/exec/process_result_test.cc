// ConcludeResult on made-up wait statuses; the runner's tests cover it with real processes.
#include "daemon/exec/process_result.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <optional>
#include <string>
#include <utility>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;

constexpr int Exited(int code) { return code << 8; }  // as wait(2) reports it
constexpr int Signaled(int sig) { return sig; }

TaskResult Conclude(const TaskLaunch& launch, std::optional<int> status,
                    std::optional<Kind> stop_reason = std::nullopt, std::string stdout_text = "") {
  TaskResult result;
  result.output = std::move(stdout_text);
  ConcludeResult(launch, status, stop_reason, &result);
  return result;
}

TEST(ProcessResultTest, ExitStatusesAndSignals) {
  TaskLaunch launch;
  TaskResult ok = Conclude(launch, Exited(0), std::nullopt, "out");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.bytes_out, 3u);

  TaskResult failed = Conclude(launch, Exited(3));
  EXPECT_EQ(failed.kind, Kind::kExited);
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.error, "exited with status 3");

  TaskResult killed = Conclude(launch, Signaled(SIGTERM));
  EXPECT_EQ(killed.kind, Kind::kSignaled);
  EXPECT_EQ(killed.signal, SIGTERM);
  EXPECT_EQ(killed.error, "killed by signal 15 (SIGTERM)");
}

TEST(ProcessResultTest, StopReasonIsTheKindWhateverTheStatus) {
  TaskLaunch launch;
  launch.timeout_ms = 1500;
  TaskResult timed_out = Conclude(launch, Exited(0), Kind::kTimedOut, "partial");
  EXPECT_EQ(timed_out.kind, Kind::kTimedOut);
  EXPECT_EQ(timed_out.error, "timed out after 1.5s");
  EXPECT_EQ(timed_out.output, "partial");

  TaskResult cancelled = Conclude(launch, Signaled(SIGKILL), Kind::kCancelled);
  EXPECT_EQ(cancelled.kind, Kind::kCancelled);
  EXPECT_EQ(cancelled.signal, SIGKILL);
  EXPECT_EQ(cancelled.error, "cancelled");

  launch.max_output_bytes = 16ull << 20;
  TaskResult too_large = Conclude(launch, Signaled(SIGKILL), Kind::kOutputTooLarge, "x");
  EXPECT_EQ(too_large.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(too_large.error, "output is over the 16Mi limit (max_output)");
  EXPECT_EQ(too_large.output, "");
  EXPECT_EQ(too_large.bytes_out, 0u);
}

TEST(ProcessResultTest, LostStatusIsAFailure) {
  TaskResult result = Conclude(TaskLaunch{}, std::nullopt);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_EQ(result.error,
            "the exit status was lost: another part of the daemon reaped the process");
}

TEST(ProcessResultTest, OutputFileOnlyAfterSuccess) {
  testing::ScopedTempDir dir;
  TaskLaunch launch;
  launch.output_file = dir.WriteFile("out", "from the file");
  EXPECT_EQ(Conclude(launch, Exited(0), std::nullopt, "stdout").output, "from the file");
  EXPECT_EQ(Conclude(launch, Exited(1), std::nullopt, "stdout").output, "stdout");
  EXPECT_EQ(Conclude(launch, Exited(0), Kind::kCancelled, "stdout").output, "stdout");
  launch.max_output_bytes = 13;
  EXPECT_TRUE(Conclude(launch, Exited(0)).ok());
  launch.max_output_bytes = 12;
  EXPECT_EQ(Conclude(launch, Exited(0)).error, "the output file is over the 12 limit (max_output)");
}

}  // namespace
}  // namespace chainctl::daemon
