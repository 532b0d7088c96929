// A run's frontier and the model's forecast over it (run_forecast.h), with a real Predictor.
#include "daemon/prefetch/run_forecast.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chainctl::daemon {
namespace {

using Ids = std::vector<int>;

TaskSpec Task(const std::string& id, std::vector<std::string> deps = {},
              TriggerRule rule = TriggerRule::kAllSuccess) {
  TaskSpec t;
  t.task_id = id;
  t.command = "run " + id;
  t.prewarm = PrewarmLevel::kSpawn;
  t.dependencies = std::move(deps);
  t.trigger_rule = rule;
  return t;
}

std::shared_ptr<const ChainView> ViewOf(std::vector<TaskSpec> tasks) {
  auto chain = std::make_shared<Chain>();
  chain->chain_id = "c";
  chain->tasks = std::move(tasks);
  ChainViewHooks hooks{.warm_launch =
                           [](const TaskSpec& t) {
                             TaskLaunch l;
                             l.argv = {"/bin/sh", "-c", t.command};
                             return l;
                           },
                       .workers = false,
                       .stager = false};
  return MakeChainView(chain, "c", hooks);
}

Ids First(const RunFrontier& f, size_t n) {
  Ids out;
  f.First(
      n, [](int) { return false; }, &out);
  return out;
}

TEST(RunFrontierTest, ATaskEntersWhenItsDependenciesAllowAndLeavesWhenItStarts) {
  // a, b roots; c after a and b (all_success); d after a or b (one_success); e after c.
  auto view = ViewOf({Task("a"), Task("b"), Task("c", {"a", "b"}),
                      Task("d", {"a", "b"}, TriggerRule::kOneSuccess), Task("e", {"c"})});
  RunFrontier f(*view);
  EXPECT_EQ(First(f, 10), (Ids{0, 1}));
  f.Started(0);
  EXPECT_TRUE(f.started(0));
  EXPECT_EQ(First(f, 10), (Ids{1, 3}));  // d needs one of its dependencies, c needs both
  f.Started(1);
  EXPECT_EQ(First(f, 10), (Ids{2, 3}));  // by dispatch order: c (a longer path after it) first
  f.Started(2);
  f.Started(2);                          // a second start changes nothing
  EXPECT_EQ(First(f, 10), (Ids{3, 4}));  // equal paths after them: file order
  EXPECT_EQ(First(f, 1), (Ids{3}));
  EXPECT_EQ(f.size(), 2u);
}

TEST(RunFrontierTest, TheViewSaysWhatEachTaskWouldPrewarm) {
  TaskSpec off = Task("off");
  off.prewarm = PrewarmLevel::kOff;
  TaskSpec gpu = Task("gpu");
  gpu.resource_requirements.gpu = 1;
  TaskSpec plain = Task("plain");
  plain.prewarm = PrewarmLevel::kStage;  // nothing to stage
  auto view = ViewOf({Task("spawn"), off, gpu, plain});
  EXPECT_EQ(view->task(0).process, WarmLevel::kSpawn);
  EXPECT_FALSE(view->task(0).key.empty());
  EXPECT_TRUE(view->task(0).key.starts_with("c/spawn#"));
  for (int i : {1, 2, 3}) {
    EXPECT_EQ(view->task(i).process, WarmLevel::kStage) << i;
    EXPECT_TRUE(view->task(i).key.empty()) << i;
  }
  EXPECT_TRUE(view->prewarms);
  EXPECT_FALSE(ViewOf({off, plain})->prewarms);
}

// Ten runs of a diamond: a, then b or c (b 8 times in 10), then d after both.
class ForecastTest : public ::testing::Test {
 protected:
  void SetUp() override {
    view_ = ViewOf({Task("a"), Task("b", {"a"}), Task("c", {"a"}), Task("d", {"b", "c"})});
    int64_t t = 1'000'000;
    for (int r = 0; r < 10; ++r) {
      std::string run = "r" + std::to_string(r);
      std::vector<std::string> order = r % 5 == 4 ? std::vector<std::string>{"a", "c", "b", "d"}
                                                  : std::vector<std::string>{"a", "b", "c", "d"};
      for (size_t i = 0; i < order.size(); ++i) {
        int64_t start = t + 100 * static_cast<int64_t>(i);
        model_.Learn({.chain_id = "c",
                      .run_id = run,
                      .task_id = order[i],
                      .start_ms = start,
                      .end_ms = start + 50});
      }
      t += 60'000;
    }
  }

  std::shared_ptr<const ChainView> view_;
  Predictor model_;
};

TEST_F(ForecastTest, TheLikeliestPathIsFollowedThroughTheJoin) {
  RunFrontier frontier(*view_);
  frontier.Started(0);
  RunContext context = model_.BeginRun("c");
  model_.Advance(&context, "a");
  std::vector<Forecast> out;
  ForecastWork work;
  ForecastRun(model_, &context, *view_, frontier, 1.0, 5000, {}, &out, &work);
  // Step 1: b (0.8) and c (0.2); step 2, after b: c; step 3, after b and c: d (made eligible by
  // the path ahead, not yet in the frontier).
  ASSERT_GE(out.size(), 4u);
  EXPECT_EQ(out[0].task, 1);
  EXPECT_NEAR(out[0].probability, 0.8, 0.1);
  EXPECT_EQ(out[0].need_ms, 5100);  // the gap a → b: 100 ms
  EXPECT_EQ(out[1].task, 2);
  EXPECT_EQ(out.back().task, 3);
  EXPECT_EQ(out.back().need_ms, 5300);
  EXPECT_EQ(work.predictions, 3u);  // then nothing is left to start
  EXPECT_EQ(work.candidates, 2u + 1 + 1);
}

TEST_F(ForecastTest, ThePathAheadLooksAtMostAtTheFirstCandidatesOfTheFrontier) {
  RunFrontier frontier(*view_);
  frontier.Started(0);
  RunContext context = model_.BeginRun("c");
  model_.Advance(&context, "a");
  std::vector<Forecast> out;
  ForecastWork work;
  ForecastRun(model_, &context, *view_, frontier, 1.0, 5000,
              {.candidates = 1, .lookahead = 2, .min_probability = 0.05}, &out, &work);
  EXPECT_EQ(work.predictions, 2u);
  EXPECT_EQ(work.candidates, 2u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].task, 1);  // b comes first in dispatch order: the only one looked at
  EXPECT_EQ(out[0].probability, 1.0);
}

}  // namespace
}  // namespace chainctl::daemon
