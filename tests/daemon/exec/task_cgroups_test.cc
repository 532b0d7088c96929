// Tasks in cgroups of their own (daemon/exec/task_cgroups.h) and the spawn into one
// (SpawnProcess with a cgroup, process_spawn.h), with real processes. The tests that need a
// cgroup v2 chaind may write to are skipped, saying why, where there is none. Waits are bounded
// polls; no fixed sleeps.
#include "daemon/exec/task_cgroups.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/read_file.h"
#include "daemon/exec/process_spawn.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

class TaskCgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    cgroups_ = TaskCgroups::Open(tmp_.path(), &why);
    if (!cgroups_) GTEST_SKIP() << "no cgroup for tasks here: " << why;
  }

  // Spawns `sh -c script` into a new cgroup (stdout kept in `process`).
  TaskCgroups::Group Spawn(const std::string& script, SpawnedProcess* process, std::string* err) {
    TaskCgroups::Group group;
    TaskLaunch launch;
    launch.argv = {"/bin/sh", "-c", script};
    launch.env = {"PATH=/usr/bin:/bin"};
    launch.workdir = workdir_;
    EXPECT_TRUE(SpawnInOwnCgroup(cgroups_.get(), launch, attributes_, "", process, &group, err))
        << *err;
    return group;
  }

  // The pids in `group` (its cgroup.procs).
  static std::string Members(const TaskCgroups::Group& group) {
    std::string procs;
    ReadFileBytes(group.dir + "/cgroup.procs", &procs);
    return procs;
  }

  // Until `done`, within 10 s.
  static bool PollUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  testing::ScopedTempDir tmp_;
  std::string workdir_ = "/";
  SpawnAttributes attributes_;
  std::unique_ptr<TaskCgroups> cgroups_;
};

// Issue 15, item 6: a descendant that calls setsid() and clears its environment escaped both the
// group's SIGKILL and the scan by CHAIN_WORKDIR. In the task's cgroup, it is killed with it.
TEST_F(TaskCgroupsTest, Issue15AnEscapeeWithoutEnvironmentIsKilledWithItsCgroup) {
  SpawnedProcess process;
  std::string err;
  TaskCgroups::Group group =
      Spawn("setsid env -i /bin/sleep 300 < /dev/null > /dev/null 2>&1 & echo $!", &process, &err);
  ASSERT_TRUE(group.valid()) << err;
  int status = 0;
  ASSERT_EQ(waitpid(process.pid, &status, 0), process.pid);  // the task's shell has ended
  char buffer[64] = {};
  ASSERT_GT(read(process.stdout_fd, buffer, sizeof buffer - 1), 0);
  pid_t escapee = std::stoi(buffer);
  EXPECT_EQ(kill(escapee, 0), 0) << "the escapee lives on after its task";
  EXPECT_NE(Members(group).find(std::to_string(escapee)), std::string::npos) << Members(group);

  TaskCgroups::Kill(group);
  EXPECT_TRUE(PollUntil([&] { return Members(group).empty(); })) << Members(group);
  std::string dir = group.dir;
  TaskCgroups::Release(&group);
  EXPECT_FALSE(group.valid());
  EXPECT_FALSE(std::filesystem::exists(dir)) << "empty: removed at once";
  close(process.pidfd);
  close(process.stdin_fd);
  close(process.stdout_fd);
}

// A cgroup released while its processes are still dying is removed by a later Make or Release.
TEST_F(TaskCgroupsTest, ACgroupReleasedBeforeItIsEmptyIsRemovedLater) {
  SpawnedProcess process;
  std::string err;
  TaskCgroups::Group group = Spawn("exec sleep 300", &process, &err);
  ASSERT_TRUE(group.valid()) << err;
  std::string dir = group.dir;
  TaskCgroups::Release(&group);  // kills it; removed now if it died at once, else waiting
  int status = 0;
  EXPECT_EQ(waitpid(process.pid, &status, 0), process.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(PollUntil([&] {
    TaskCgroups::Group next;
    int error = 0;
    EXPECT_TRUE(cgroups_->Make(&next, &err, &error)) << err;  // each retries the waiting ones
    TaskCgroups::Release(&next);
    return !std::filesystem::exists(dir);
  }));
  close(process.pidfd);
  close(process.stdin_fd);
  close(process.stdout_fd);
}

// A spawn into a cgroup fails as posix_spawn's does, and leaves no process and no cgroup.
TEST_F(TaskCgroupsTest, ASpawnThatCannotExecFailsSayingWhy) {
  TaskCgroups::Group group;
  std::string err;
  int error = 0;
  ASSERT_TRUE(cgroups_->Make(&group, &err, &error)) << err;
  TaskLaunch launch;
  launch.argv = {"/nonexistent/program"};
  SpawnedProcess process;
  EXPECT_FALSE(SpawnProcess(launch, attributes_, "", &process, &err, group.procs_fd));
  EXPECT_EQ(err, "cannot run /nonexistent/program: No such file or directory");
  EXPECT_EQ(process.error, ENOENT);
  EXPECT_EQ(Members(group), "");
  TaskCgroups::Release(&group);
  launch.argv = {"/bin/true"};
  launch.workdir = tmp_.path() + "/missing";
  EXPECT_FALSE(SpawnInOwnCgroup(cgroups_.get(), launch, attributes_, "", &process, &group, &err));
  EXPECT_EQ(err, "cannot enter the workdir " + launch.workdir + ": No such file or directory");
  EXPECT_FALSE(group.valid()) << "released by SpawnInOwnCgroup";
  size_t cgroups_left = 0;
  for (const auto& entry : std::filesystem::directory_iterator(cgroups_->dir())) {
    cgroups_left += entry.is_directory();
  }
  EXPECT_EQ(cgroups_left, 0u);
}

// What a chaind left in its cgroups (it was killed) is killed by the next one of the same state
// folder, and the cgroups are removed.
TEST_F(TaskCgroupsTest, LeftoversOfAnEarlierChaindAreKilledAtOpen) {
  SpawnedProcess process;
  std::string err;
  TaskCgroups::Group group = Spawn("exec sleep 300", &process, &err);
  ASSERT_TRUE(group.valid()) << err;
  std::string dir = group.dir;
  close(group.procs_fd);  // that chaind died: cgroups_ is never used again
  std::string why;
  std::unique_ptr<TaskCgroups> next = TaskCgroups::Open(tmp_.path(), &why);
  ASSERT_TRUE(next) << why;
  EXPECT_EQ(next->dir(), cgroups_->dir());
  int status = 0;
  EXPECT_EQ(waitpid(process.pid, &status, 0), process.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_FALSE(std::filesystem::exists(dir));
  close(process.pidfd);
  close(process.stdin_fd);
  close(process.stdout_fd);
  next.reset();
  EXPECT_FALSE(std::filesystem::exists(cgroups_->dir())) << "removed with the last chaind";
}

// Where no cgroup can be made, Open says why (here: a plain folder is no cgroup).
TEST(TaskCgroupsOpenTest, AFolderThatIsNoCgroupIsRefusedSayingWhy) {
  testing::ScopedTempDir tmp;
  std::string why;
  EXPECT_EQ(TaskCgroups::OpenIn(tmp.path(), "chaind-x", &why), nullptr);
  EXPECT_EQ(why, "the cgroup " + tmp.path() +
                     "/chaind-x has no cgroup.kill (Linux 5.14 or later "
                     "is required)");
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/chaind-x"));
}

}  // namespace
}  // namespace chainctl::daemon
