// ProcessRunner (process_runner_fixture.h): what a task starts with (environment, workdir, its
// own process group, signals, descriptors) and the spawns that fail.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/daemon/exec/process_runner_fixture.h"

namespace chainctl::daemon::runner_test {
namespace {

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

}  // namespace
}  // namespace chainctl::daemon::runner_test
