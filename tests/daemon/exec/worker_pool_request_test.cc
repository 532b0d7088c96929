// WorkerPool (worker_pool_fixture.h): how a request ends when the worker does not simply answer
// it: {"error"}, death, a closed stdout, protocol errors, timeout, Cancel, max_output, spawn
// failures; and responses in pieces or with more after them.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "tests/daemon/exec/worker_pool_fixture.h"

namespace chainctl::daemon::pool_test {
namespace {

TEST_F(WorkerPoolTest, ErrorResponseFailsTheRequestAndKeepsTheWorker) {
  pid_t pid = PidOf(Echo("k"));
  TaskResult result = RunOne("k", Launch(), {{"op", "error"}});
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error, "worker error: bad input");
  EXPECT_EQ(PidOf(Echo("k")), pid);
}

TEST_F(WorkerPoolTest, ErrorResponseStopsTheWorkerWhenReuseAfterErrorIsOff) {
  WorkerPoolOptions options;
  options.reuse_after_error = false;
  MakePool(options);
  TaskResult result = RunOne("k", Launch(), {{"op", "error"}});
  EXPECT_EQ(result.error, "worker error: bad input");
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
}

TEST_F(WorkerPoolTest, WorkerExitingMidRequestFailsItWithItsStatus) {
  pid_t pid = PidOf(Echo("k"));
  TaskResult result = RunOne("k", Launch(), {{"op", "exit"}, {"code", 3}});
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.error, "worker died during the request: exited with status 3");
  EXPECT_TRUE(Gone(pid));
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
}

TEST_F(WorkerPoolTest, WorkerExitingZeroWithoutAnsweringIsNotASuccess) {
  TaskResult result = RunOne("k", Launch(), {{"op", "exit"}, {"code", 0}});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.kind, Kind::kExited);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.error, "worker died during the request: exited with status 0");
}

TEST_F(WorkerPoolTest, WorkerClosingStdoutMidRequestIsKilled) {
  TaskLaunch launch = Launch();
  launch.kill_grace_ms = 20;  // how long it may take to exit on its own
  TaskResult result = RunOne("k", launch, {{"op", "close_stdout"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_EQ(result.error,
            "worker died during the request: closed its stdout (killed by signal 9 (SIGKILL))");
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, GarbageResponseKillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "garbage"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error,
            "worker protocol error: the response is not a JSON object: this is not json "
            "(killed by signal 9 (SIGKILL))");
  EXPECT_EQ(pool_->idle(), 0u);
}

// Issue 15: a reply that is not UTF-8, or nests too deep, is a protocol error (it killed chaind
// once it was dumped or copied).
TEST_F(WorkerPoolTest, Issue15ResponseNotUtf8KillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "not_utf8"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error.substr(0, 63),
            "worker protocol error: the response is not valid UTF-8 at byte ");
  EXPECT_NE(result.error.find(" (0xff) (killed by signal 9"), std::string::npos) << result.error;
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, Issue15ResponseTooDeepKillsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "deep"}});
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error.substr(0, 64),
            "worker protocol error: the response nests deeper than 64 levels ");
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, ResponseWithAnotherIdKillsTheWorker) {
  auto slot = std::make_shared<std::optional<TaskResult>>();
  WorkerPool::Handle handle = pool_->Run("k", Launch(), Request({{"op", "wrong_id"}}),
                                         [slot](TaskResult result) { *slot = std::move(result); });
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kSignaled);
  EXPECT_EQ(result.error, "worker protocol error: the response's id is " +
                              std::to_string(handle + 1) + ", not " + std::to_string(handle) +
                              " (killed by signal 9 (SIGKILL))");
}

TEST_F(WorkerPoolTest, TimeoutKillsTheWorker) {
  TaskLaunch launch = Launch();
  launch.timeout_ms = 50;
  TaskResult result = RunOne("k", launch, {{"op", "hang"}});
  EXPECT_EQ(result.kind, Kind::kTimedOut);
  EXPECT_EQ(result.error, "timed out after 50ms");
  EXPECT_NE(result.signal, 0);
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, CancelKillsTheWorkerAndReportsLater) {
  auto slot = std::make_shared<std::optional<TaskResult>>();
  WorkerPool::Handle handle = pool_->Run("k", Launch(), Request({{"op", "hang"}}),
                                         [slot](TaskResult result) { *slot = std::move(result); });
  pool_->Cancel(handle);
  EXPECT_FALSE(slot->has_value());
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kCancelled);
  EXPECT_EQ(result.error, "cancelled");
  EXPECT_EQ(pool_->busy(), 0u);
  pool_->Cancel(handle);  // ended: nothing
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, ResponseOverMaxOutputKillsTheWorker) {
  TaskLaunch launch = Launch();
  launch.max_output_bytes = 1000;
  TaskResult small = RunOne("k", launch, {{"op", "big"}, {"size", 500}});
  ASSERT_TRUE(small.ok()) << small.error;
  EXPECT_EQ(small.output, "\"" + std::string(500, 'x') + "\"");
  TaskResult result = RunOne("k", launch, {{"op", "big"}, {"size", 200'000}});
  EXPECT_EQ(result.kind, Kind::kOutputTooLarge);
  EXPECT_EQ(result.error, "response is over the 1000 limit (max_output)");
  EXPECT_TRUE(result.output.empty());
  EXPECT_TRUE(AllStopped());
}

TEST_F(WorkerPoolTest, SpawnFailureIsReportedLater) {
  TaskLaunch launch = Launch();
  launch.argv = {"/nonexistent/worker"};
  auto slot = Start("k", launch, {{"op", "echo"}});
  EXPECT_FALSE(slot->has_value());
  TaskResult result = Wait(slot);
  EXPECT_EQ(result.kind, Kind::kSpawnFailed);
  EXPECT_EQ(result.error, "cannot run /nonexistent/worker: No such file or directory");
  std::string err;
  EXPECT_FALSE(pool_->Prewarm("k", launch, 0, &err));
  EXPECT_EQ(err, "cannot run /nonexistent/worker: No such file or directory");
  EXPECT_EQ(pool_->idle(), 0u);
}

TEST_F(WorkerPoolTest, WorkerWithAMemoryLimitRunsThroughTheSpawnHelper) {
  WorkerPoolOptions options;
  options.exec_helper = kExecHelper;
  MakePool(options);
  TaskLaunch launch = Launch();
  launch.memory_limit_bytes = 1ull << 30;
#ifndef __SANITIZE_ADDRESS__  // ASan's shadow memory does not fit under a memory limit
  TaskResult result = RunOne("k", launch, {{"op", "echo"}});
  ASSERT_TRUE(result.ok()) << result.error;
  std::ifstream limits("/proc/" + std::to_string(PidOf(result)) + "/limits");
  std::string text((std::istreambuf_iterator<char>(limits)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("1073741824"), std::string::npos) << text;
#endif

  launch.argv = {"/nonexistent/worker"};
  TaskResult failed = RunOne("other", launch, {{"op", "echo"}});
  EXPECT_EQ(failed.kind, Kind::kSpawnFailed);
  EXPECT_EQ(failed.error, "cannot run /nonexistent/worker: No such file or directory");
  std::string err;
  ASSERT_TRUE(pool_->Prewarm("other", launch, 0, &err));  // the helper ran: it fails later
  EXPECT_TRUE(RunUntil([&] { return pool_->idle("other") == 0 && pool_->stopping() == 0; }));
}

TEST_F(WorkerPoolTest, ResponseInSeveralChunksIsOneLine) {
  TaskResult result = RunOne("k", Launch(), {{"op", "chunked"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(CountOf(result), 1);
  EXPECT_EQ(pool_->idle("k"), 1u);
}

TEST_F(WorkerPoolTest, OutputBeyondTheResponseStopsTheWorker) {
  TaskResult result = RunOne("k", Launch(), {{"op", "extra"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(pool_->idle(), 0u);
  EXPECT_TRUE(Echo("k").cold);
  EXPECT_NE(PidOf(Echo("k")), PidOf(result));
}

TEST_F(WorkerPoolTest, IdleWorkerThatWritesIsStopped) {
  TaskResult result = RunOne("k", Launch(), {{"op", "late_extra"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_TRUE(AllStopped());
  EXPECT_TRUE(Gone(PidOf(result)));
  EXPECT_TRUE(idle_stops_.empty());
}

TEST_F(WorkerPoolTest, ResponseJustBeforeExitingStillCounts) {
  TaskResult result = RunOne("k", Launch(), {{"op", "answer_exit"}});
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_TRUE(RunUntil([&] { return Gone(PidOf(result)); }));
  EXPECT_EQ(pool_->idle(), 0u);
}

}  // namespace
}  // namespace chainctl::daemon::pool_test
