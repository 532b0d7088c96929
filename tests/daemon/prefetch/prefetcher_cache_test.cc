// The prefetcher and the task cache (cache_forecast.h, PrefetchHooks::expected_hit): a task
// expected to be restored from the cache gets no process ahead; one expected to run does (the
// fixture: prefetcher_fixture.h).
#include <gtest/gtest.h>

#include "tests/daemon/prefetch/prefetcher_fixture.h"

namespace chainctl::daemon::testing_prefetch {
namespace {

TEST_F(PrefetcherTest, ATaskExpectedToBeACacheHitIsNotSpawnedAheadUntilItIsNot) {
  TaskSpec cached = Spawn("s2");
  cached.sources = {"src/*.py"};
  TwoTasks("c", cached, 100);
  std::optional<bool> answer;  // not known yet: not prewarmed either
  int asked = 0;
  expected_hit_ = [&](const std::string& chain_id, const TaskSpec& task) {
    EXPECT_EQ(chain_id, "c");
    EXPECT_EQ(task.task_id, "s2");
    ++asked;
    return answer;
  };
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});
  EXPECT_TRUE(runner_.PrewarmedTasks().empty());
  EXPECT_GT(asked, 0);
  answer = true;
  PlanAgain();
  EXPECT_TRUE(runner_.PrewarmedTasks().empty()) << "a hit needs no process";
  answer = false;  // a source changed: it will run
  PlanAgain();
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
}

TEST_F(PrefetcherTest, ATaskWithCachingOffIsNeverAskedAbout) {
  TwoTasks("c", Spawn("s2"), 100);
  int asked = 0;
  expected_hit_ = [&](const std::string&, const TaskSpec&) {
    ++asked;
    return std::optional<bool>(true);
  };
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});
  EXPECT_EQ(runner_.PrewarmedTasks(), Names{"s2"});
  EXPECT_EQ(asked, 0);
}

// s1 -> s2 -> s3, s2 and s3 cached: an edit to s2's sources changes s3's input too, so s3 is
// prewarmed although its own sources are unchanged.
TEST_F(PrefetcherTest, ATaskAfterACachedTaskThatWillRunIsPrewarmed) {
  TaskSpec s2 = Spawn("s2"), s3 = Spawn("s3");
  s2.sources = {"src/s2/*"};
  s2.dependencies = {"s1"};
  s3.sources = {"src/s3/*"};
  s3.dependencies = {"s2"};
  Define("c", {Spawn("s1"), s2, s3});
  for (int i = 0; i < 5; ++i) {
    ObserveRun("c", kHistoryStart + i * 60'000, {{"s1", 0}, {"s2", 100}, {"s3", 200}});
  }
  std::map<std::string, std::optional<bool>> answers = {{"s2", true}, {"s3", true}};
  expected_hit_ = [&](const std::string&, const TaskSpec& task) { return answers[task.task_id]; };
  MakePrefetcher(Options(4));
  Started("r", "c", {"s1"});
  EXPECT_TRUE(runner_.PrewarmedTasks().empty()) << "both expected to be restored";
  answers["s2"] = false;
  PlanAgain();
  EXPECT_EQ(runner_.PrewarmedTasks(), (Names{"s2", "s3"}));
}

}  // namespace
}  // namespace chainctl::daemon::testing_prefetch
