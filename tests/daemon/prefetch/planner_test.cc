// The planner's rules (planner.h), one at a time, on hand-made desires and entries: pure, no
// loop, no clock.
#include "daemon/prefetch/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace chainctl::daemon {
namespace {

constexpr int64_t kNow = 1'000'000;

std::shared_ptr<const ChainView> View() {
  auto chain = std::make_shared<Chain>();
  chain->chain_id = "c";
  for (const char* id : {"a", "b", "c", "d"}) {
    TaskSpec task;
    task.task_id = id;
    chain->tasks.push_back(task);
  }
  auto view = std::make_shared<ChainView>();
  view->chain = chain;
  view->chain_id = "c";
  return view;
}

// A process desire of `key`, due now unless `fire_in` says when, scored `score`.
Desire Want(const std::string& key, double score, double fire_in = 0, double p = 0.9) {
  return {.key = key,
          .view = View(),
          .level = WarmLevel::kSpawn,
          .probability = p,
          .need_ms = kNow + fire_in + 600,
          .fire_ms = kNow + fire_in,
          .score = score,
          .memory = 100,
          .keep_alive_ms = 10'000};
}

WarmEntry Warm(uint64_t id, const std::string& key, int64_t expires_in = 10'000) {
  return {.id = id,
          .key = key,
          .level = WarmLevel::kSpawn,
          .memory = 100,
          .expires_ms = kNow + expires_in};
}

PlanInput Input(std::vector<Desire> desires, std::vector<WarmEntry> entries, size_t processes,
                size_t starting = 8, size_t lanes = 8) {
  return {.desires = std::move(desires),
          .entries = std::move(entries),
          .idle_workers = {},
          .budgets = {.processes = processes,
                      .memory = 1'000'000,
                      .staged = 1'000'000,
                      .starting = starting,
                      .lanes = lanes},
          .now_ms = kNow};
}

std::vector<std::string> Keys(const std::vector<Desire>& desires) {
  std::vector<std::string> out;
  for (const Desire& d : desires) out.push_back(d.key);
  return out;
}

using Keys_ = std::vector<std::string>;
using Ids = std::vector<uint64_t>;

TEST(PlannerTest, AnEntryPastItsKeepAliveIsStoppedButNotWhileItStages) {
  WarmEntry staging = Warm(2, "b", 0);
  staging.level = WarmLevel::kStage;
  staging.busy = true;
  PlanDecision d = Decide(Input({}, {Warm(1, "a", 0), staging, Warm(3, "c", 1)}, 4));
  EXPECT_EQ(d.expired, Ids{1});
  EXPECT_EQ(d.wake_ms, kNow + 1);  // c's keep-alive; b's staging end plans again
}

TEST(PlannerTest, AWantedEntryLivesOnAndADueDesireRestartsItsKeepAlive) {
  PlanDecision d = Decide(
      Input({Want("a", 10), Want("b", 10, 5000)}, {Warm(1, "a", 100), Warm(2, "b", 100)}, 4));
  EXPECT_TRUE(d.start.empty());
  EXPECT_TRUE(d.queue.empty());
  ASSERT_EQ(d.extended.size(), 1u);  // b is not due: its keep-alive is not restarted
  EXPECT_EQ(d.extended[0], (std::pair<uint64_t, int64_t>{1, kNow + 10'000}));
}

TEST(PlannerTest, ASecondEntryOfATaskIsWeighedByTheFirstsProbability) {
  // a is wanted twice (two runs), b once with a lower score: b's one entry comes before a's
  // second (70 × 0.5 < 60).
  PlanDecision d =
      Decide(Input({Want("a", 70, 0, 0.5), Want("a", 70, 0, 0.5), Want("b", 60)}, {}, 2));
  EXPECT_EQ(Keys(d.start), (Keys_{"a", "b"}));
  EXPECT_EQ(Keys(d.queue), Keys_{"a"});
}

TEST(PlannerTest, OnlyAClearlyWorseIdleEntryOfAnotherTaskIsEvicted) {
  // Budget 2, both taken: x (unwanted: score 0) and y (wanted, 79). a (98) needs room: x goes,
  // y stays (79 is not under 0.8 × 98 = 78.4).
  PlanDecision d =
      Decide(Input({Want("a", 98), Want("y", 79, 0)}, {Warm(1, "x"), Warm(2, "y")}, 2));
  EXPECT_EQ(d.evicted, Ids{1});
  EXPECT_EQ(Keys(d.start), Keys_{"a"});
  PlanDecision same = Decide(Input({Want("a", 98)}, {Warm(1, "a"), Warm(2, "a2")}, 1));
  EXPECT_TRUE(same.evicted.empty());  // a is met by its own entry
}

TEST(PlannerTest, RoomIsKeptForABetterDesireThatComesBeforeTheDueOneIsNeeded) {
  // Budget 1. b (better) fires in 100 ms, before a is needed (600 ms): a waits. c (better)
  // fires in a minute, after a is used: a takes the room.
  PlanDecision kept = Decide(Input({Want("b", 100, 100), Want("a", 10)}, {}, 1));
  EXPECT_TRUE(kept.start.empty());
  EXPECT_EQ(kept.wake_ms, kNow + 100);
  PlanDecision taken = Decide(Input({Want("c", 100, 60'000), Want("a", 10)}, {}, 1));
  EXPECT_EQ(Keys(taken.start), Keys_{"a"});
  Desire overdue = Want("b", 100, 100);
  overdue.holds_room = false;  // a chain already overdue: its need slides with the clock
  PlanDecision slides = Decide(Input({overdue, Want("a", 10)}, {}, 1));
  EXPECT_EQ(Keys(slides.start), Keys_{"a"});
}

TEST(PlannerTest, ProcessesStartInNeedOrderWhileFewStartUp) {
  Desire late = Want("late", 100);
  late.need_ms += 300;
  late.fire_ms -= 1;  // due, and needed after the others
  Desire soon = Want("soon", 10);
  soon.fire_ms -= 50;
  Desire stage = Want("files", 1);
  stage.level = WarmLevel::kStage;
  stage.fire_ms -= 100;
  // One start-up at once, one under way: nothing starts but the staging; the planner wakes when
  // the start-up under way stops counting (it may be slow: the ready event is the usual wake).
  WarmEntry starting = Warm(1, "x");
  starting.starting_until_ms = kNow + 700;
  PlanDecision held = Decide(Input({late, soon, stage}, {starting}, 8, 1));
  EXPECT_EQ(Keys(held.start), Keys_{"files"});
  EXPECT_EQ(Keys(held.queue), (Keys_{"late", "soon"}));  // best first
  EXPECT_EQ(held.wake_ms, kNow + 700);
  // Two at once, none under way: both, the first needed first.
  PlanDecision both = Decide(Input({late, soon}, {}, 8, 2));
  EXPECT_EQ(Keys(both.start), (Keys_{"soon", "late"}));
  // One at once: the first needed, whatever the scores.
  PlanDecision one = Decide(Input({late, soon}, {}, 8, 1));
  EXPECT_EQ(Keys(one.start), Keys_{"soon"});
}

// Three processes needed 50 ms apart, each 200 ms to start (fire = need − 200): one start-up at
// a time, each must start when the one after it would, so all are ready by their needs.
TEST(PlannerTest, ProcessesNeededTogetherStartEarlyEnoughToBeReadyInTurn) {
  std::vector<Desire> three;
  for (int i = 0; i < 3; ++i) {
    Desire d = Want("t" + std::to_string(i), 10, 0);
    d.need_ms = kNow + 1000 + 50 * i;
    d.fire_ms = d.need_ms - 200;
    three.push_back(d);
  }
  auto fires = [](const PlanDecision& d) {
    std::map<std::string, double> out;
    for (const Desire& q : d.queue) out[q.key] = q.fire_ms - kNow;
    for (const Desire& q : d.start) out[q.key] = q.fire_ms - kNow;
    return out;
  };
  std::map<std::string, double> one = fires(Decide(Input(three, {}, 8, 8, 1)));
  EXPECT_EQ(one, (std::map<std::string, double>{{"t0", 500}, {"t1", 700}, {"t2", 900}}));
  std::map<std::string, double> two = fires(Decide(Input(three, {}, 8, 8, 2)));
  EXPECT_EQ(two, (std::map<std::string, double>{{"t0", 700}, {"t1", 850}, {"t2", 900}}));
  PlanDecision later = Decide(Input(three, {}, 8, 8, 1));
  EXPECT_EQ(later.wake_ms, kNow + 500);  // the first start
}

TEST(PlannerTest, TheBudgetsHoldWhateverIsWanted) {
  std::vector<Desire> many;
  for (int i = 0; i < 20; ++i) many.push_back(Want("t" + std::to_string(i), 100 + i));
  PlanInput in = Input(many, {Warm(1, "old")}, 5);
  in.budgets.memory = 350;  // room for three of 100
  PlanDecision d = Decide(in);
  EXPECT_EQ(d.evicted, Ids{1});  // the unwanted entry (score 0) made room
  EXPECT_EQ(d.start.size(), 3u);
  EXPECT_EQ(d.start[0].key.substr(0, 1), "t");
  EXPECT_EQ(d.queue.size(), 17u);
}

}  // namespace
}  // namespace chainctl::daemon
