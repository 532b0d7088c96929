// WatchedProcess (daemon/exec/watched_process.h) on its own, with real processes (/bin/sh and
// coreutils) spawned by SpawnProcess on a real libuv loop: what its hooks see and when, the kills
// at the leader's exit, and when the object goes. Waits are loop runs until a condition holds,
// bounded by a deadline; no fixed sleeps.
#include "daemon/exec/watched_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "tests/daemon/exec/process_runner_fixture.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using runner_test::Eventually;
using runner_test::kDeadline;
using runner_test::LiveProcessesInGroup;
using runner_test::ReadPid;
using runner_test::WithGrandchild;

// What the hooks of one Recorder saw; outlives it (it deletes itself).
struct Seen {
  std::string out;
  bool stdout_ended = false;
  bool reaped = false;
  std::optional<int> wait_status;
  double cpu_s = -1;
  int timers = 0;
  bool destroyed = false;
  bool destroyed_inside_retire = false;
};

// A WatchedProcess that records its hooks and retires once its process is reaped and stdout is
// done (as the runner's attempts and the pool's workers do), with the protected parts the tests
// drive made public.
class Recorder : public WatchedProcess {
 public:
  Recorder(Settings settings, std::shared_ptr<Seen> seen)
      : WatchedProcess(std::move(settings)), seen_(std::move(seen)) {}
  ~Recorder() override { seen_->destroyed = true; }

  using WatchedProcess::CloseStdin;
  using WatchedProcess::Retire;
  using WatchedProcess::StartTimer;
  using WatchedProcess::stdin_stream;
  using WatchedProcess::StopTimer;

 private:
  void OnStdout(const char* data, size_t size) override { seen_->out.append(data, size); }
  void OnStdoutEnded() override {
    seen_->stdout_ended = true;
    RetireAtTheEnd();
  }
  void OnReaped() override {
    seen_->reaped = true;
    seen_->wait_status = wait_status();
    seen_->cpu_s = cpu_s();
    RetireAtTheEnd();
  }
  void OnTimer() override { ++seen_->timers; }
  void RetireAtTheEnd() {
    if (!exited() || stdout_open() || retired()) return;
    std::shared_ptr<Seen> seen = seen_;
    Retire();
    seen->destroyed_inside_retire = seen->destroyed;
  }

  std::shared_ptr<Seen> seen_;
};

class WatchedProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    uv_timer_init(&loop_, &tick_);
  }

  void TearDown() override {
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    int status = 0;
    EXPECT_LE(waitpid(-1, &status, WNOHANG), 0) << "a zombie was left";
  }

  // A Recorder on a new process running `script`, its environment with CHAIN_WORKDIR (as a
  // task's); `*process` is what was spawned. The process is not watched yet.
  Recorder* Spawn(const std::string& script, SpawnedProcess* process) {
    TaskLaunch launch;
    launch.argv = {"/bin/sh", "-c", script};
    launch.env = {"PATH=/usr/bin:/bin", "CHAIN_WORKDIR=" + dir_.path()};
    launch.workdir = dir_.path();
    launch.log_path = dir_.path() + "/log";
    std::string err;
    EXPECT_TRUE(SpawnProcess(launch, attributes_, "", process, &err)) << err;
    return new Recorder({.loop = &loop_,
                         .read_buffer = read_buffer_.get(),
                         .workdir = dir_.path(),
                         .spawned = std::chrono::steady_clock::now()},
                        seen_);
  }

  // Spawned and watched.
  Recorder* Start(const std::string& script) {
    SpawnedProcess process;
    Recorder* recorder = Spawn(script, &process);
    EXPECT_EQ(recorder->Watch(process, {}), 0);
    return recorder;
  }

  // Runs the loop until `condition` holds, waking every millisecond to check it; false after
  // kDeadline.
  bool RunUntil(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + kDeadline;
    uv_timer_start(
        &tick_, [](uv_timer_t*) {}, 1, 1);
    bool held = true;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) {
        held = false;
        break;
      }
      uv_run(&loop_, UV_RUN_ONCE);
    }
    uv_timer_stop(&tick_);
    return held;
  }

  testing::ScopedTempDir dir_;
  uv_loop_t loop_{};
  uv_timer_t tick_{};
  SpawnAttributes attributes_;
  std::unique_ptr<char[]> read_buffer_{new char[WatchedProcess::kReadBufferSize]};
  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
};

TEST_F(WatchedProcessTest, StdoutThenItsEndThenTheReapedStatusThenItGoes) {
  Recorder* recorder = Start("printf hello; exit 3");
  EXPECT_GT(recorder->pid(), 0);
  EXPECT_FALSE(recorder->exited());
  ASSERT_TRUE(RunUntil([&] { return seen_->reaped && seen_->stdout_ended; }));
  EXPECT_EQ(seen_->out, "hello");
  ASSERT_TRUE(seen_->wait_status.has_value());
  EXPECT_TRUE(WIFEXITED(*seen_->wait_status));
  EXPECT_EQ(WEXITSTATUS(*seen_->wait_status), 3);
  EXPECT_GE(seen_->cpu_s, 0);
  EXPECT_FALSE(seen_->destroyed_inside_retire) << "deleted before its close callbacks";
  ASSERT_TRUE(RunUntil([&] { return seen_->destroyed; }));
}

TEST_F(WatchedProcessTest, TheOwnerWritesStdinThroughItsStream) {
  Recorder* recorder = Start("cat");
  uv_write_t write{};
  std::string text = "ping";
  uv_buf_t buf = uv_buf_init(text.data(), static_cast<unsigned>(text.size()));
  ASSERT_EQ(uv_write(&write, recorder->stdin_stream(), &buf, 1, nullptr), 0);
  recorder->CloseStdin();  // after the write: cat reads "ping", then EOF
  ASSERT_TRUE(RunUntil([&] { return seen_->destroyed; }));
  EXPECT_EQ(seen_->out, "ping");
  EXPECT_EQ(WEXITSTATUS(seen_->wait_status.value_or(-1)), 0);
}

TEST_F(WatchedProcessTest, TheGroupIsKilledWhenTheLeaderExitsSoStdoutEnds) {
  // The grandchild holds stdout open: stdout ends only because it is killed with the group.
  Start(WithGrandchild("exit 0"));
  ASSERT_TRUE(RunUntil([&] { return seen_->destroyed; }));
  pid_t pgid = ReadPid(dir_.path() + "/pid");
  ASSERT_GT(pgid, 0);
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(pgid) == 0; }));
}

TEST_F(WatchedProcessTest, EscapeesWithItsWorkdirAreKilledWhenTheLeaderExits) {
  // The escapee leads a session of its own, which the group's SIGKILL cannot reach; it is found
  // by the CHAIN_WORKDIR it inherited (without a cgroup).
  Start(
      "setsid sleep 1000 & pid=$!; "
      "while [ \"$(cut -d' ' -f5 /proc/$pid/stat)\" != $pid ]; do :; done; "
      "echo $pid > escaped");
  ASSERT_TRUE(RunUntil([&] { return seen_->destroyed; }));
  pid_t escaped = ReadPid(dir_.path() + "/escaped");
  ASSERT_GT(escaped, 0);
  EXPECT_TRUE(Eventually([&] { return LiveProcessesInGroup(escaped) == 0; }));
}

TEST_F(WatchedProcessTest, TheTimerFiresOnTheLoopNeverInsideStartTimer) {
  Recorder* recorder = Start("cat");
  recorder->StartTimer(0);
  EXPECT_EQ(seen_->timers, 0);
  ASSERT_TRUE(RunUntil([&] { return seen_->timers == 1; }));
  recorder->StartTimer(0);
  recorder->StopTimer();
  recorder->CloseStdin();  // cat ends
  ASSERT_TRUE(RunUntil([&] { return seen_->destroyed; }));
  EXPECT_EQ(seen_->timers, 1) << "a stopped timer fired";
}

TEST_F(WatchedProcessTest, AbandonKillsAndReapsAtOnceWithoutHooks) {
  Recorder* recorder = Start("echo started; exec sleep 1000");
  ASSERT_TRUE(RunUntil([&] { return !seen_->out.empty(); }));
  pid_t pid = recorder->pid();
  EXPECT_GT(recorder->ResidentKb(), 0u);
  recorder->Abandon();
  errno = 0;
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "killed and reaped";
  EXPECT_TRUE(recorder->exited());
  EXPECT_EQ(recorder->pid(), -1);
  EXPECT_EQ(recorder->ResidentKb(), 0u);
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_TRUE(seen_->destroyed);
  EXPECT_FALSE(seen_->reaped);
  EXPECT_FALSE(seen_->stdout_ended);
}

TEST_F(WatchedProcessTest, AFailedWatchKillsAndReapsTheProcess) {
  SpawnedProcess process;
  Recorder* recorder = Spawn("exec sleep 1000", &process);
  close(process.stdout_fd);
  process.stdout_fd = 1 << 20;  // no such descriptor: the stdout pipe cannot be opened
  EXPECT_LT(recorder->Watch(process, {}), 0);
  errno = 0;
  EXPECT_EQ(kill(process.pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "killed and reaped";
  EXPECT_TRUE(recorder->exited());
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_FALSE(seen_->destroyed) << "only the owner retires it";
  recorder->Abandon();
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_TRUE(seen_->destroyed);
  EXPECT_FALSE(seen_->reaped) << "no hook after a failed watch";
}

}  // namespace
}  // namespace chainctl::daemon
