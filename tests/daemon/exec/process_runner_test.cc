// ProcessRunner with real processes (/bin/sh and coreutils) on a real libuv loop. Waits are
// loop runs until `done` (bounded by a watchdog timer) or bounded polls; no fixed sleeps.
#include "daemon/exec/process_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
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

using Kind = TaskResult::Kind;

// Only a broken runner makes a test wait this long.
constexpr auto kDeadline = std::chrono::seconds(60);

// chaind-exec, built with the tests (tests/CMakeLists.txt).
constexpr const char* kExecHelper = CHAINCTL_EXEC_HELPER;

// Entries of /proc/self/fd.
size_t OpenFdCount() {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Processes of group `pgid` that have not exited (zombies do not count: killed grandchildren
// are reparented to init, which reaps them when it does).
int LiveProcessesInGroup(pid_t pgid) {
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
bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
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

// Writes its pid to ./pid (atomically) and leaves a background grandchild; then `rest`.
std::string WithGrandchild(const std::string& rest) {
  return "echo $$ > pid.tmp && mv pid.tmp pid; sleep 1000 & " + rest;
}

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

TEST_F(ProcessRunnerTest, EnvironmentAndWorkdirReachTheTask) {
  std::string workdir = dir_.path() + "/work";
  std::filesystem::create_directory(workdir);
  TaskLaunch launch = Shell("printf '%s|%s|%s' \"$GREETING\" \"${HOME-unset}\" \"$(pwd -P)\"");
  launch.env.push_back("GREETING=hello world");
  launch.workdir = workdir;
  TaskResult result = Run(launch);
  EXPECT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.output, "hello world|unset|" + std::filesystem::canonical(workdir).string());
}

TEST_F(ProcessRunnerTest, MissingExecutableIsSpawnFailedLater) {
  std::optional<TaskResult> result;
  runner_->Start(Launch({"/no/such/program", "arg"}), [&](TaskResult r) { result = std::move(r); });
  EXPECT_FALSE(result.has_value()) << "done was called inside Start";
  EXPECT_EQ(runner_->running(), 1u);
  RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(result->kind, Kind::kSpawnFailed);
  EXPECT_EQ(result->error, "cannot run /no/such/program: No such file or directory");
  EXPECT_EQ(runner_->running(), 0u);
}

TEST_F(ProcessRunnerTest, FileWithoutExecutePermissionIsSpawnFailed) {
  std::string script = dir_.WriteFile("script.sh", "#!/bin/sh\necho hi\n");
  TaskResult result = Run(Launch({script}));
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run " + script + ": Permission denied");
}

TEST_F(ProcessRunnerTest, MissingWorkdirIsSpawnFailed) {
  TaskLaunch launch = Launch({"/bin/true"});
  launch.workdir = dir_.path() + "/gone";
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error,
            "cannot enter the workdir " + launch.workdir + ": No such file or directory");
}

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

TEST_F(ProcessRunnerTest, EachTaskLeadsItsOwnProcessGroup) {
  std::vector<std::string> pgids;
  for (int i = 0; i < 2; ++i) {
    TaskResult result = Run(Shell("echo $$; cut -d' ' -f5 /proc/$$/stat"));
    ASSERT_TRUE(result.ok()) << result.error;
    size_t newline = result.output.find('\n');
    std::string pid = result.output.substr(0, newline);
    std::string pgid = result.output.substr(newline + 1);
    EXPECT_EQ(pid + "\n", pgid);
    EXPECT_NE(std::stoi(pid), getpgrp());
    pgids.push_back(pgid);
  }
  EXPECT_NE(pgids[0], pgids[1]);
}

TEST_F(ProcessRunnerTest, SignalMaskAndDispositionsAreReset) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);  // SIGPIPE is ignored already (SetUpTestSuite)
  TaskResult piped = Run(Shell("kill -PIPE $$; echo survived"));
  TaskResult termed = Run(Shell("kill -TERM $$; echo survived"));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(piped.signal, SIGPIPE) << piped.output;
  EXPECT_EQ(termed.signal, SIGTERM) << termed.output;
}

TEST_F(ProcessRunnerTest, TaskGetsNoDescriptorButStdio) {
  int inheritable = open("/dev/null", O_RDONLY);  // no O_CLOEXEC on purpose
  ASSERT_GE(inheritable, 3);
  TaskResult result = Run(Launch({"/bin/ls", "/proc/self/fd"}));
  close(inheritable);
  EXPECT_EQ(result.output, "0\n1\n2\n3\n");  // 3: ls's own, reading the folder
}

TEST_F(ProcessRunnerTest, NoDescriptorLeaksOverManyRuns) {
  Run(Launch({"/bin/true"}));  // the loop's first stream reserves a descriptor (EMFILE trick)
  size_t before = OpenFdCount();
  for (int i = 0; i < 200; ++i) {
    TaskLaunch launch = Launch({"/bin/cat"});
    if (i % 2 == 0) launch.stdin_data = "run " + std::to_string(i);
    if (i % 10 == 0) launch.argv = {"/no/such/program"};
    TaskResult result = Run(launch);
    ASSERT_EQ(result.ok(), i % 10 != 0) << result.error;
    ASSERT_EQ(result.output, i % 10 == 0 ? "" : launch.stdin_data);
  }
  EXPECT_EQ(OpenFdCount(), before);
  int status = 0;
  errno = 0;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "a child was left";
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

TEST_F(ProcessRunnerTest, TimesComeFromTheClock) {
  int64_t now = 1000;
  runner_ = std::make_unique<ProcessRunner>(&loop_, [&now] { return now += 1000; });
  TaskResult result = Run(Launch({"/bin/true"}));
  EXPECT_EQ(result.start_unix_ms, 2000);
  EXPECT_EQ(result.end_unix_ms, 3000);
}

// --- Limits (TaskLaunch memory_limit_bytes, cpu_limit_s) through the spawn helper. ---

TEST_F(ProcessRunnerTest, LimitsAreInForceWhenTheTaskStarts) {
  // cat is the task's own process: what it reads is what it was exec'd with.
  TaskLaunch launch = Launch({"/bin/cat", "/proc/self/limits"});
  launch.memory_limit_bytes = 64 << 20;
  launch.cpu_limit_s = 3;
  TaskResult result = Run(launch);
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_NE(result.output.find("Max data size             67108864             67108864"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("Max cpu time              3                    5"),
            std::string::npos)
      << result.output;
}

TEST_F(ProcessRunnerTest, MemoryLimitFailsAllocationsBeyondIt) {
  TaskLaunch over = Launch({"/usr/bin/python3", "-c", "b = bytearray(200 << 20); print(len(b))"});
  over.memory_limit_bytes = 64 << 20;
  TaskResult result = Run(over);
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error,
            "exited with status 1 (under a memory limit of 64Mi, where allocations beyond it "
            "fail)");
  EXPECT_NE(testing::ReadFileOrDie(over.log_path).find("MemoryError"), std::string::npos);

  TaskLaunch under = Launch({"/usr/bin/python3", "-c", "b = bytearray(16 << 20); print(len(b))"});
  under.memory_limit_bytes = 64 << 20;
  result = Run(under);
  EXPECT_TRUE(result.ok()) << result.error << testing::ReadFileOrDie(under.log_path);
  EXPECT_EQ(result.output, std::to_string(16 << 20) + "\n");
}

TEST_F(ProcessRunnerTest, CpuLimitEndsABusyLoopWithSigxcpu) {
  TaskLaunch launch = Shell("while :; do :; done");
  launch.cpu_limit_s = 1;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.signal, SIGXCPU);
  EXPECT_EQ(result.error,
            "killed by signal 24 (SIGXCPU): over its CPU-time limit of 1s (cpu x timeout)");
  EXPECT_GT(result.cpu_s, 0);  // rusage's figure may be a little under the kernel's own count
}

TEST_F(ProcessRunnerTest, LimitedTaskThatCannotRunIsSpawnFailedAsWithoutLimits) {
  TaskLaunch launch = Launch({"/no/such/program", "arg"});
  launch.memory_limit_bytes = 64 << 20;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run /no/such/program: No such file or directory");
  EXPECT_EQ(result.exit_code, 0);
  std::string script = dir_.WriteFile("script.sh", "#!/bin/sh\necho hi\n");
  launch.argv = {script};
  result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run " + script + ": Permission denied");
  launch.argv = {"/bin/true"};
  launch.workdir = dir_.path() + "/gone";
  result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error,
            "cannot enter the workdir " + launch.workdir + ": No such file or directory");
}

TEST_F(ProcessRunnerTest, LimitsWithoutAUsableHelperAreSpawnFailed) {
  TaskLaunch launch = Launch({"/bin/true"});
  launch.cpu_limit_s = 1;
  runner_ = std::make_unique<ProcessRunner>(&loop_);
  TaskResult result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error,
            "cannot enforce the task's limits: chaind has no spawn helper (chaind-exec)");
  runner_ = std::make_unique<ProcessRunner>(&loop_, ProcessRunner::UnixMsClock{},
                                            dir_.path() + "/chaind-exec");
  result = Run(launch);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run the spawn helper " + dir_.path() +
                              "/chaind-exec: No such file or directory");
  EXPECT_TRUE(Run(Launch({"/bin/true"})).ok()) << "tasks without limits do not need it";
}

TEST_F(ProcessRunnerTest, LimitedTaskGetsNoDescriptorButStdio) {
  TaskLaunch launch = Launch({"/bin/ls", "/proc/self/fd"});
  launch.memory_limit_bytes = 64 << 20;
  TaskResult result = Run(launch);
  EXPECT_EQ(result.output, "0\n1\n2\n3\n");  // 3: ls's own, reading the folder
}

TEST_F(ProcessRunnerTest, NoDescriptorLeaksThroughTheHelper) {
  Run(Launch({"/bin/true"}));  // the loop's first stream reserves a descriptor
  size_t before = OpenFdCount();
  for (int i = 0; i < 50; ++i) {
    TaskLaunch launch = Launch({i % 5 == 0 ? "/no/such/program" : "/bin/true"});
    launch.memory_limit_bytes = 64 << 20;
    ASSERT_EQ(Run(launch).ok(), i % 5 != 0);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// --- Prewarming (level spawn): started ahead, blocked on its stdin, taken by Start. ---

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
}  // namespace chainctl::daemon
