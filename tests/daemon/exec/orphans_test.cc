// Finding and killing leftover task processes (daemon/exec/orphans.h), with real processes. Waits
// are bounded polls; no fixed sleeps.
#include "daemon/exec/orphans.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

// Starts `sh -c script` leading a process group of its own, with `env`.
pid_t SpawnGroup(const std::string& script, std::vector<std::string> env = {}) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  env.push_back("PATH=/usr/bin:/bin");
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", c = "-c", s = script;
  char* argv[] = {sh.data(), c.data(), s.data(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, &attr, argv, envp.data()), 0);
  posix_spawnattr_destroy(&attr);
  return pid;
}

// The pid a script wrote to `path`, once it has (bounded poll).
pid_t PidFromFile(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ADD_FAILURE() << "nothing written to " << path;
  return 0;
}

// Waits until `pid` runs `program` (its exec is done; bounded poll).
void WaitForExec(pid_t pid, const std::string& program) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string argv0;
    if (std::getline(in, argv0, '\0') && argv0 == program) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ADD_FAILURE() << pid << " never ran " << program;
}

bool Contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

TEST(OrphansTest, KillsTheStampedGroupAndOnlyIfTheStampMatches) {
  testing::ScopedTempDir tmp;
  const std::string file = tmp.path() + "/child";
  pid_t leader = SpawnGroup("sleep 1000 & echo $! > " + file + "; exec sleep 1000");
  pid_t child = PidFromFile(file);
  std::optional<ProcessStamp> stamp = StampOf(leader);
  ASSERT_TRUE(stamp);

  ProcessStamp other = *stamp;
  ++other.start_ticks;  // the pid, reused by a later process
  EXPECT_TRUE(KillStampedGroup(other).empty());
  EXPECT_EQ(kill(child, 0), 0) << "a process that is not the stamped one is left alone";

  std::vector<pid_t> killed = KillStampedGroup(*stamp);
  EXPECT_TRUE(Contains(killed, leader));
  EXPECT_TRUE(Contains(killed, child)) << "the leader's whole group";
  EXPECT_TRUE(WaitGone(killed, 10000));
  int status = 0;
  ASSERT_EQ(waitpid(leader, &status, 0), leader);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(OrphansTest, KillsWhatIsLeftOfAGroupWhoseLeaderHasGone) {
  testing::ScopedTempDir tmp;
  const std::string file = tmp.path() + "/child";
  pid_t leader = SpawnGroup("sleep 1000 & echo $! > " + file);
  pid_t child = PidFromFile(file);
  int status = 0;
  ASSERT_EQ(waitpid(leader, &status, 0), leader);  // the leader is gone; its child is not
  ASSERT_EQ(kill(child, 0), 0);

  std::vector<pid_t> killed = KillStampedGroup({leader, 0});
  EXPECT_EQ(killed, std::vector<pid_t>{child});
  EXPECT_TRUE(WaitGone(killed, 10000));
}

TEST(OrphansTest, TaskProcessesAreFoundByTheirWorkdirUnderTheRunsFolder) {
  testing::ScopedTempDir tmp;
  const std::string runs = tmp.path() + "/runs";
  pid_t task = SpawnGroup("exec sleep 1000", {"CHAIN_WORKDIR=" + runs + "/run-1/t/work"});
  pid_t other_daemon =
      SpawnGroup("exec sleep 1000", {"CHAIN_WORKDIR=" + runs + "-other/run-1/t/work"});
  pid_t unrelated = SpawnGroup("exec sleep 1000");
  for (pid_t pid : {task, other_daemon, unrelated}) WaitForExec(pid, "sleep");
  std::vector<pid_t> killed = KillTaskProcesses(runs);
  EXPECT_EQ(killed, std::vector<pid_t>{task});
  EXPECT_TRUE(WaitGone(killed, 10000));
  EXPECT_EQ(kill(other_daemon, 0), 0);
  EXPECT_EQ(kill(unrelated, 0), 0);
  for (pid_t pid : {task, other_daemon, unrelated}) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

// The race CI met: a process in the middle of an exec shows an empty environment for a
// moment. Each task here is looked for at once, while its shell is probably still exec'ing
// sleep; it must be found all the same.
TEST(OrphansTest, ATaskProcessInTheMiddleOfAnExecIsFound) {
  testing::ScopedTempDir tmp;
  const std::string runs = tmp.path() + "/runs";
  for (int i = 0; i < 20; ++i) {
    pid_t task = SpawnGroup("exec sleep 1000", {"CHAIN_WORKDIR=" + runs + "/run-1/t/work"});
    std::vector<pid_t> killed = KillTaskProcesses(runs);
    EXPECT_EQ(killed, std::vector<pid_t>{task}) << "try " << i;
    kill(task, SIGKILL);
    waitpid(task, nullptr, 0);
  }
}

// A task whose shell starts two processes in sessions of their own: one keeps the task's
// environment (an escapee, killed), one clears it (not known to be the task's: left alone).
TEST(OrphansTest, EscapeesAreFoundByTheirExactWorkdir) {
  testing::ScopedTempDir tmp;
  const std::string workdir = tmp.path() + "/runs/run-1/t/work";
  pid_t leader = SpawnGroup("setsid sleep 1000 < /dev/null & echo $! > " + tmp.path() +
                                "/escapee; setsid env -i /bin/sleep 1000 < /dev/null & echo $! > " +
                                tmp.path() + "/clean; exec sleep 1000",
                            {"CHAIN_WORKDIR=" + workdir});
  pid_t escapee = PidFromFile(tmp.path() + "/escapee");
  pid_t clean = PidFromFile(tmp.path() + "/clean");
  WaitForExec(escapee, "sleep");
  WaitForExec(clean, "/bin/sleep");
  ASSERT_EQ(kill(-leader, SIGKILL), 0);  // the task's group; its leader stays unreaped
  EXPECT_TRUE(KillEscapees(leader, workdir + "/other", /*scan_all=*/false).empty());
  std::vector<pid_t> killed = KillEscapees(leader, workdir, /*scan_all=*/false);
  EXPECT_EQ(killed, std::vector<pid_t>{escapee});
  EXPECT_TRUE(WaitGone(killed, 10000));
  EXPECT_EQ(kill(clean, 0), 0) << "a process without the task's CHAIN_WORKDIR is left alone";
  kill(clean, SIGKILL);
  EXPECT_TRUE(WaitGone({clean}, 10000));
  waitpid(leader, nullptr, 0);
}

TEST(OrphansTest, NoStampForAProcessThatIsGone) {
  pid_t pid = SpawnGroup("exit 0");
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
  EXPECT_FALSE(StampOf(pid));
  EXPECT_TRUE(KillStampedGroup({pid, 1}).empty()) << "no process, no member of its group";
}

}  // namespace
}  // namespace chainctl::daemon
