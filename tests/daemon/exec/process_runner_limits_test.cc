// ProcessRunner (process_runner_fixture.h): limits (TaskLaunch memory_limit_bytes, cpu_limit_s)
// through the spawn helper chaind-exec.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>

#include "tests/daemon/exec/process_runner_fixture.h"

namespace chainctl::daemon::runner_test {
namespace {

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

}  // namespace
}  // namespace chainctl::daemon::runner_test
