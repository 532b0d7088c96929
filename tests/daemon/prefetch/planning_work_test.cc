// The work an event costs the prefetcher (DESIGN.md §5 "Cost"; issue 14): counted, never timed.
// Work per event is bounded by what the event changed (a run's frontier, capped), never by the
// chain's width nor the history's length; a chain with nothing to prewarm asks the model
// nothing; the events of one loop turn make one plan.
#include <gtest/gtest.h>

#include "tests/daemon/prefetch/prefetcher_fixture.h"

namespace chainctl::daemon::testing_prefetch {
namespace {

enum class Shape { kLinear, kFanOut };

// `width` tasks after a root: a line (each after the one before) or a fan (all after the root).
std::vector<TaskSpec> Tasks(Shape shape, int width, bool spawn) {
  std::vector<TaskSpec> tasks;
  for (int i = 0; i <= width; ++i) {
    TaskSpec t = Spawn("t" + std::to_string(i));
    if (!spawn) t.prewarm = PrewarmLevel::kStage;
    if (i > 0) t.dependencies = {shape == Shape::kLinear ? "t" + std::to_string(i - 1) : "t0"};
    tasks.push_back(std::move(t));
  }
  return tasks;
}

class PlanningWorkTest : public PrefetcherTest {
 protected:
  // Work of `events` task starts of a run of a chain `width` wide (after a first start and two
  // runs of history); each start is its own loop turn.
  PlanningWork RunWork(Shape shape, int width, bool spawn, int events) {
    std::string id = "c" + std::to_string(width);
    Define(id, Tasks(shape, width, spawn));
    for (int r = 0; r < 2; ++r) {
      std::vector<std::pair<std::string, int64_t>> starts;
      for (int i = 0; i <= width; ++i) starts.push_back({"t" + std::to_string(i), 10 * i});
      ObserveRun(id, kHistoryStart + r * 600'000, starts);
    }
    MakePrefetcher(Options(4));
    Names started{"t0"};
    Started("run", id, started);  // the first start also forecasts the chains expected next
    PlanningWork before = prefetcher_->work();
    for (int i = 1; i <= events; ++i) {
      now_ += 10;
      started.push_back("t" + std::to_string(i));
      Started("run", id, started);
    }
    PlanningWork after = prefetcher_->work();
    return {.events = after.events - before.events,
            .plans = after.plans - before.plans,
            .forecasts = after.forecasts - before.forecasts,
            .model = {.predictions = after.model.predictions - before.model.predictions,
                      .candidates = after.model.candidates - before.model.candidates}};
  }
};

TEST_F(PlanningWorkTest, ALinearChainCostsTheSamePerEventWhateverItsLength) {
  PlanningWork w100 = RunWork(Shape::kLinear, 100, true, 50);
  for (int width : {1000, 10'000}) {
    PlanningWork w = RunWork(Shape::kLinear, width, true, 50);
    EXPECT_EQ(w.plans, 50u) << width;
    EXPECT_EQ(w.forecasts, w100.forecasts) << width;
    EXPECT_EQ(w.model.predictions, w100.model.predictions) << width;
    EXPECT_EQ(w.model.candidates, w100.model.candidates) << width;
  }
  // One task in the frontier, 8 starts ahead: 8 predictions of one candidate per event.
  EXPECT_EQ(w100.model.predictions, 50u * 8);
  EXPECT_EQ(w100.model.candidates, 50u * 8);
}

TEST_F(PlanningWorkTest, AFanOutCostsTheSamePerEventWhateverItsWidth) {
  PlanningWork w100 = RunWork(Shape::kFanOut, 100, true, 50);
  for (int width : {1000, 10'000}) {
    PlanningWork w = RunWork(Shape::kFanOut, width, true, 50);
    EXPECT_EQ(w.model.predictions, w100.model.predictions) << width;
    EXPECT_EQ(w.model.candidates, w100.model.candidates) << width;
  }
  // At most the first 32 of the frontier, 8 starts ahead, per event.
  EXPECT_LE(w100.model.candidates, 50u * 32 * 8);
  EXPECT_GT(w100.model.candidates, 50u * 8);  // it did look at more than one
}

TEST_F(PlanningWorkTest, AChainWithNothingToPrewarmAsksTheModelNothing) {
  PlanningWork w = RunWork(Shape::kFanOut, 1000, /*spawn=*/false, 500);
  EXPECT_EQ(w.events, 500u);
  EXPECT_EQ(w.plans, 0u);  // nothing a plan looks at changed
  EXPECT_EQ(w.forecasts, 0u);
  EXPECT_EQ(w.model.predictions, 0u);
  EXPECT_EQ(w.model.candidates, 0u);
}

TEST_F(PlanningWorkTest, TheEventsOfOneLoopTurnMakeOnePlan) {
  std::shared_ptr<const Chain> chain = Define("fan", Tasks(Shape::kFanOut, 100, true));
  MakePrefetcher(Options(4));
  for (int i = 0; i <= 100; ++i) prefetcher_->TaskStarted("run", "fan", chain, i);
  EXPECT_EQ(prefetcher_->work().plans, 0u);
  Settle();
  EXPECT_EQ(prefetcher_->work().events, 101u);
  EXPECT_EQ(prefetcher_->work().plans, 1u);
  EXPECT_EQ(prefetcher_->work().forecasts, 1u);  // the run; no chain is expected next yet
}

}  // namespace
}  // namespace chainctl::daemon::testing_prefetch
