// ProcessRunner with real processes (/bin/sh and coreutils) on a real libuv loop
// (process_runner_fixture.h): how an attempt ends, its stdin, stdout, output file and log.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <uv.h>

#include <filesystem>
#include <optional>
#include <string>

#include "tests/daemon/exec/process_runner_fixture.h"

namespace chainctl::daemon::runner_test {
namespace {

TEST_F(ProcessRunnerTest, ExitZeroCapturesStdout) {
  TaskResult result = Run(Shell("printf 'hello\\nworld'"));
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "hello\nworld");
  EXPECT_EQ(result.bytes_out, 11u);
  EXPECT_EQ(result.error, "");
  EXPECT_GT(result.startup_ms, 0);
  EXPECT_GT(result.max_rss_kb, 0);
  EXPECT_GE(result.cpu_s, 0);
}

TEST_F(ProcessRunnerTest, NonZeroExitIsExitedWithStatus) {
  TaskResult result = Run(Shell("echo partial; exit 3"));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.error, "exited with status 3");
  EXPECT_EQ(result.output, "partial\n");
}

TEST_F(ProcessRunnerTest, DeathBySignalIsSignaled) {
  TaskResult result = Run(Shell("kill -9 $$"));
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(result.error, "killed by signal 9 (SIGKILL)");
}

TEST_F(ProcessRunnerTest, TimesComeFromTheClock) {
  int64_t now = 1000;
  runner_ = std::make_unique<ProcessRunner>(&loop_, [&now] { return now += 1000; });
  TaskResult result = Run(Launch({"/bin/true"}));
  EXPECT_EQ(result.start_unix_ms, 2000);
  EXPECT_EQ(result.end_unix_ms, 3000);
}

TEST_F(ProcessRunnerTest, StdinFromAFile) {
  TaskLaunch launch = Launch({"/bin/cat"});
  launch.stdin_file = dir_.WriteFile("input.json", R"({"from": "a file"})");
  launch.stdin_data = "not this";
  TaskResult result = Run(std::move(launch));
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, R"({"from": "a file"})");
  EXPECT_EQ(result.bytes_in, 18u);
  TaskLaunch missing = Launch({"/bin/cat"});
  missing.stdin_file = dir_.path() + "/nope.json";
  result = Run(std::move(missing));
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_NE(result.error.find("cannot open the input file"), std::string::npos) << result.error;
}

TEST_F(ProcessRunnerTest, TwentyMegabytesOfStdinEchoedWhileTheLoopTurns) {
  std::string input(20 << 20, '\0');
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 26);
  TaskLaunch launch = Launch({"/bin/cat"});
  launch.stdin_data = input;
  launch.max_output_bytes = input.size();
  // Counts loop iterations while the task runs: the input goes in many steps, not in one
  // blocking write.
  uv_check_t check;
  uv_check_init(&loop_, &check);
  int iterations = 0;
  check.data = &iterations;
  uv_check_start(&check, [](uv_check_t* c) { ++*static_cast<int*>(c->data); });
  TaskResult result = Run(std::move(launch));
  CloseHandle(&check);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.bytes_in, input.size());
  EXPECT_EQ(result.bytes_out, input.size());
  EXPECT_TRUE(result.output == input);
  EXPECT_GT(iterations, 20);
}

TEST_F(ProcessRunnerTest, LargeStdinToATaskThatDoesNotReadLeavesTheLoopFree) {
  TaskLaunch launch = Shell("exec sleep 1000");
  launch.stdin_data.assign(20 << 20, 'x');
  std::optional<TaskResult> result;
  struct Cancel {
    ProcessRunner* runner;
    TaskRunner::Handle handle;
  } cancel{runner_.get(), 0};
  cancel.handle = runner_->Start(std::move(launch), [&](TaskResult r) { result = std::move(r); });
  // Fires only if the loop is not stuck writing stdin.
  uv_timer_t timer;
  uv_timer_init(&loop_, &timer);
  timer.data = &cancel;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        auto* c = static_cast<Cancel*>(t->data);
        c->runner->Cancel(c->handle);
      },
      0, 0);
  RunUntil([&] { return result.has_value(); });
  CloseHandle(&timer);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->kind, Kind::kCancelled);
  EXPECT_LT(result->bytes_in, 20u << 20);
}

TEST_F(ProcessRunnerTest, TaskThatExitsWithoutReadingStdinIsFine) {
  TaskLaunch launch = Launch({"/bin/true"});
  launch.stdin_data.assign(4 << 20, 'x');  // more than a pipe holds
  TaskResult result = Run(launch);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_LT(result.bytes_in, 4u << 20);
}

TEST_F(ProcessRunnerTest, StdoutOverMaxOutputKillsTheGroup) {
  TaskLaunch launch = Shell(WithGrandchild("exec yes"));
  launch.max_output_bytes = 1 << 20;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(result.error, "output is over the 1Mi limit (max_output)");
  EXPECT_EQ(result.output, "");
  EXPECT_EQ(result.signal, SIGKILL);
  pid_t pgid = ReadPid(dir_.path() + "/pid");
  ASSERT_GT(pgid, 0);
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
}

TEST_F(ProcessRunnerTest, OutputExactlyAtTheLimitIsFine) {
  TaskLaunch launch = Shell("printf 12345");
  launch.max_output_bytes = 5;
  TaskResult result = Run(launch);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "12345");
}

TEST_F(ProcessRunnerTest, OutputFileReplacesStdout) {
  TaskLaunch launch = Shell("printf '{\"n\": 1}' > \"$CHAIN_OUTPUT_FILE\"; echo chatter");
  launch.output_file = dir_.path() + "/output.json";
  launch.env.push_back("CHAIN_OUTPUT_FILE=" + launch.output_file);
  TaskResult result = Run(launch);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "{\"n\": 1}");
  EXPECT_EQ(result.bytes_out, 8u);
}

TEST_F(ProcessRunnerTest, StdoutIsTheOutputWithoutAnOutputFile) {
  TaskLaunch launch = Shell("echo chatter");
  launch.output_file = dir_.path() + "/output.json";
  TaskResult result = Run(launch);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "chatter\n");
}

TEST_F(ProcessRunnerTest, OutputFileOfAFailedTaskIsNotUsed) {
  TaskLaunch launch = Shell("printf file > out; echo stdout; exit 1");
  launch.output_file = dir_.path() + "/out";
  TaskResult result = Run(launch);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.output, "stdout\n");
}

TEST_F(ProcessRunnerTest, OutputFileOverMaxOutputFails) {
  TaskLaunch launch = Shell("printf 123456 > out");
  launch.output_file = dir_.path() + "/out";
  launch.max_output_bytes = 5;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(result.error, "the output file is over the 5 limit (max_output)");
  EXPECT_EQ(result.output, "");
}

TEST_F(ProcessRunnerTest, OutputFileThatIsNotAFileFails) {
  TaskLaunch launch = Shell("mkdir out");
  launch.output_file = dir_.path() + "/out";
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(result.error,
            "cannot read the output file " + launch.output_file + ": not a regular file");
}

TEST_F(ProcessRunnerTest, StderrGoesToTheLogFile) {
  std::string log = dir_.WriteFile("task.log", "old content that is longer\n");
  chmod(log.c_str(), 0644);
  TaskResult result = Run(Shell("echo oops >&2; echo out"));
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.output, "out\n");
  EXPECT_EQ(testing::ReadFileOrDie(log), "oops\n");

  std::filesystem::remove(log);
  Run(Shell("echo new >&2"));
  struct stat st {};
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Issue 15, item 5: a task wrote 200 MB of stderr as is. While it runs, its log is kept within
// max_log_bytes on disk (log_bound.h), and once more at its end.
TEST_F(ProcessRunnerTest, StderrLogIsBoundedWhileTheTaskRunsAndAtItsEnd) {
  TaskLaunch launch = Shell("head -c 8000000 /dev/zero | tr '\\0' x >&2; touch written; sleep 30");
  launch.max_log_bytes = 1 << 20;
  std::string log = launch.log_path;
  auto on_disk = [&log] {
    struct stat st {};
    return stat(log.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
  };
  std::optional<TaskResult> result;
  TaskRunner::Handle handle =
      runner_->Start(std::move(launch), [&](TaskResult r) { result = std::move(r); });
  RunUntil([&] { return std::filesystem::exists(dir_.path() + "/written"); }, /*poll=*/true);
  RunUntil([&] { return on_disk() <= (1 << 20) + 8192; }, /*poll=*/true);  // still running
  EXPECT_FALSE(result.has_value());
  runner_->Cancel(handle);
  RunUntil([&] { return result.has_value(); });

  TaskLaunch quick = Shell("head -c 8000000 /dev/zero | tr '\\0' y >&2");
  quick.max_log_bytes = 1 << 20;
  log = quick.log_path = dir_.path() + "/quick.log";
  EXPECT_TRUE(Run(std::move(quick)).ok());
  EXPECT_LE(on_disk(), (1u << 20) + 8192) << "bounded at its end, before any check";
}

TEST_F(ProcessRunnerTest, ConcurrentTasksEachGetTheirResult) {
  std::vector<std::optional<TaskResult>> results(20);
  for (size_t i = 0; i < results.size(); ++i) {
    TaskLaunch launch = Shell("cat; exit " + std::to_string(i));
    launch.stdin_data = "task " + std::to_string(i);
    runner_->Start(std::move(launch), [&results, i](TaskResult r) { results[i] = std::move(r); });
  }
  EXPECT_EQ(runner_->running(), results.size());
  RunUntil([&] { return runner_->running() == 0; });
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].has_value());
    EXPECT_EQ(results[i]->exit_code, static_cast<int>(i));
    EXPECT_EQ(results[i]->output, "task " + std::to_string(i));
  }
}

}  // namespace
}  // namespace chainctl::daemon::runner_test
