// The predictor on synthetic histories whose answer is known.
#include "common/predict/predictor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace chainctl {
namespace {

using Tasks = std::vector<std::string>;

class PredictorTest : public ::testing::Test {
 protected:
  // Learns one run of `chain` that starts `tasks` in order, 100 ms apart, each lasting 50 ms.
  void LearnRun(Predictor* m, const std::string& chain, const Tasks& tasks) {
    std::string run = "run" + std::to_string(++runs_);
    for (const std::string& task : tasks) {
      m->Learn({.chain_id = chain,
                .run_id = run,
                .task_id = task,
                .start_ms = clock_,
                .end_ms = clock_ + 50});
      clock_ += 100;
    }
    clock_ += 1000;
  }

  static double P(const std::vector<TaskCandidate>& candidates, const std::string& task) {
    for (const TaskCandidate& c : candidates) {
      if (c.task_id == task) return c.probability;
    }
    return 0;
  }

  static double Sum(const std::vector<TaskCandidate>& candidates) {
    double sum = 0;
    for (const TaskCandidate& c : candidates) sum += c.probability;
    return sum;
  }

  int runs_ = 0;
  int64_t clock_ = 1'700'000'000'000;
};

// The branch of run i in a 70/20/10 pattern that repeats every 10 runs.
std::string Branch(int i, const std::string& often, const std::string& sometimes,
                   const std::string& rarely) {
  static const char* kPattern = "aabaacaaba";  // 7 a, 2 b, 1 c
  char c = kPattern[i % 10];
  return c == 'a' ? often : c == 'b' ? sometimes : rarely;
}

TEST_F(PredictorTest, DeterministicChainIsPredictedExactlyAfterAFewRuns) {
  Predictor m;
  Tasks chain{"fetch", "parse", "transform", "load", "report"};
  int misses_after_two_runs = 0;
  for (int run = 0; run < 6; ++run) {
    Tasks started;
    for (const std::string& task : chain) {
      std::vector<TaskCandidate> c = m.PredictTasks("etl", started, nullptr);
      if (run >= 2) {
        ASSERT_FALSE(c.empty());
        if (c[0].task_id != task) ++misses_after_two_runs;
        EXPECT_GT(c[0].probability, 0.5) << "run " << run << ", before " << task;
        EXPECT_NEAR(Sum(c), 1.0, 1e-9);
      }
      started.push_back(task);
    }
    LearnRun(&m, "etl", chain);
  }
  EXPECT_EQ(misses_after_two_runs, 0);  // top-1 = 1.0 from the third run on
  // After the last task nothing is likely to come: every candidate was seen once per run.
  std::vector<TaskCandidate> after_last = m.PredictTasks("etl", chain, nullptr);
  EXPECT_LT(after_last[0].probability, 0.5);
}

TEST_F(PredictorTest, BranchProbabilitiesConvergeToTheirFrequencies) {
  Predictor m;
  for (int i = 0; i < 300; ++i) LearnRun(&m, "route", {"router", Branch(i, "x", "y", "z")});
  std::vector<TaskCandidate> c = m.PredictTasks("route", {"router"}, nullptr);
  EXPECT_NEAR(P(c, "x"), 0.7, 0.05);
  EXPECT_NEAR(P(c, "y"), 0.2, 0.05);
  EXPECT_NEAR(P(c, "z"), 0.1, 0.05);
  EXPECT_EQ(c[0].task_id, "x");
  // The router itself starts each run.
  EXPECT_EQ(m.PredictTasks("route", {}, nullptr)[0].task_id, "router");
}

// Once one branch has started, history says the others never run in the same run: they are
// marked unlikely (the prefetcher does not prewarm them), while the report after them is not.
TEST_F(PredictorTest, BranchesThatNeverRanTogetherAreUnlikelyOnceOneStarted) {
  Predictor m;
  for (int i = 0; i < 30; ++i) {
    LearnRun(&m, "route", {"router", Branch(i, "x", "y", "z"), "report"});
  }
  auto unlikely = [](const std::vector<TaskCandidate>& c, const std::string& task) {
    for (const TaskCandidate& t : c) {
      if (t.task_id == task) return t.unlikely;
    }
    return false;
  };
  std::vector<TaskCandidate> after_router = m.PredictTasks("route", {"router"}, nullptr);
  EXPECT_FALSE(unlikely(after_router, "x"));
  EXPECT_FALSE(unlikely(after_router, "y"));
  std::vector<TaskCandidate> after_x = m.PredictTasks("route", {"router", "x"}, nullptr);
  EXPECT_TRUE(unlikely(after_x, "y"));
  EXPECT_TRUE(unlikely(after_x, "z"));
  EXPECT_FALSE(unlikely(after_x, "report"));
  EXPECT_EQ(after_x[0].task_id, "report");
  // The persisted form keeps it.
  Predictor back;
  std::string err;
  ASSERT_TRUE(Predictor::FromJson(m.ToJson(), &back, &err)) << err;
  EXPECT_TRUE(unlikely(back.PredictTasks("route", {"router", "x"}, nullptr), "y"));
}

TEST_F(PredictorTest, DecayFollowsAChangeOfBranchProbabilities) {
  // 300 runs of x/y/z at 70/20/10, then z/y/x at 70/20/10: after how many runs of the new
  // regime is z the top candidate after the router, and when is P(z) within ±0.05 of 0.7?
  struct Followed {
    int top = 0, close = 0;
  };
  auto follow = [this](double half_life) {
    Predictor m({.half_life = half_life});
    for (int i = 0; i < 300; ++i) LearnRun(&m, "route", {"router", Branch(i, "x", "y", "z")});
    Followed f;
    for (int n = 1; n <= 2000 && f.close == 0; ++n) {
      LearnRun(&m, "route", {"router", Branch(n, "z", "y", "x")});
      std::vector<TaskCandidate> c = m.PredictTasks("route", {"router"}, nullptr);
      if (f.top == 0 && c[0].task_id == "z") f.top = n;
      if (f.top != 0 && std::abs(P(c, "z") - 0.7) <= 0.05) f.close = n;
    }
    return f;
  };
  Followed with_default = follow(PredictorParams{}.half_life);  // 1000 starts = 500 runs
  Followed short_half_life = follow(50);                        // 25 runs
  Followed without_decay = follow(0);
  // Without decay, z overtakes x when 30 + 0.7n > 210 + 0.1n: n = 300 and more.
  EXPECT_GE(without_decay.top, 295);
  EXPECT_EQ(without_decay.close, 0);  // never within 0.05 in 2000 runs: the old runs weigh on
  // With decay the old counts fade: z leads well before, and the new probabilities are reached
  // a few half-lives on.
  EXPECT_LE(with_default.top, 250);
  EXPECT_GT(with_default.close, 0);
  EXPECT_LE(with_default.close, 2000);
  EXPECT_LE(short_half_life.top, 40);
  EXPECT_LE(short_half_life.close, 150);
  RecordProperty("runs_to_lead_default", with_default.top);
  RecordProperty("runs_to_converge_default", with_default.close);
  RecordProperty("runs_to_lead_half_life_50", short_half_life.top);
  RecordProperty("runs_to_converge_half_life_50", short_half_life.close);
  std::printf("runs to follow: default lead %d converge %d; half-life 50: %d %d; none: %d %d\n",
              with_default.top, with_default.close, short_half_life.top, short_half_life.close,
              without_decay.top, without_decay.close);
}

ChainShape Fan() {
  // root -> {a (0.2), b (0.9), c (0.5)} -> join (all three)
  return {.tasks = {"root", "a", "b", "c", "join"},
          .weights = {1.0, 0.2, 0.9, 0.5, 1.0},
          .deps = {{}, {0}, {0}, {0}, {1, 2, 3}},
          .needs_all_deps = {true, true, true, true, true}};
}

TEST_F(PredictorTest, PrefetchWeightDecidesTheOrderWithoutHistory) {
  Predictor m;
  ChainShape shape = Fan();
  std::vector<TaskCandidate> first = m.PredictTasks("fan", {}, &shape);
  ASSERT_EQ(first.size(), 1u);  // only the root can start first
  EXPECT_EQ(first[0].task_id, "root");
  EXPECT_DOUBLE_EQ(first[0].probability, 1.0);

  std::vector<TaskCandidate> next = m.PredictTasks("fan", {"root"}, &shape);
  ASSERT_EQ(next.size(), 3u);  // the join waits for all three; the root has started
  EXPECT_EQ(next[0].task_id, "b");
  EXPECT_EQ(next[1].task_id, "c");
  EXPECT_EQ(next[2].task_id, "a");
  EXPECT_NEAR(next[0].probability / next[2].probability, 0.9 / 0.2, 1e-9);
  EXPECT_NEAR(Sum(next), 1.0, 1e-9);
}

TEST_F(PredictorTest, HistoryTakesOverFromTheWeights) {
  Predictor m;
  ChainShape shape = Fan();
  for (int i = 0; i < 20; ++i) LearnRun(&m, "fan", {"root", "a", "c", "b", "join"});
  std::vector<TaskCandidate> next = m.PredictTasks("fan", {"root"}, &shape);
  EXPECT_EQ(next[0].task_id, "a");  // lowest weight, but always first in history
  EXPECT_GT(next[0].probability, 0.8);
}

TEST_F(PredictorTest, TheDagRulesOutCandidates) {
  Predictor m;
  ChainShape shape = Fan();
  for (int i = 0; i < 5; ++i) LearnRun(&m, "fan", {"root", "a", "b", "c", "join"});
  // After the join, nothing the DAG has can start again (all are its ancestors, or it).
  std::vector<TaskCandidate> after_join = m.PredictTasks("fan", {"root", "b", "join"}, &shape);
  for (const TaskCandidate& c : after_join) EXPECT_EQ(c.task_id, "join");  // a retry at most
  // Before c has started, the join (all_success) is not a candidate.
  for (const TaskCandidate& c : m.PredictTasks("fan", {"root", "a", "b"}, &shape)) {
    EXPECT_NE(c.task_id, "join");
    EXPECT_NE(c.task_id, "root");
  }
  // A task history knows but the definition no longer has is not a candidate.
  LearnRun(&m, "fan", {"root", "old", "a", "b", "c", "join"});
  for (const TaskCandidate& c : m.PredictTasks("fan", {"root"}, &shape)) {
    EXPECT_NE(c.task_id, "old");
  }
}

TEST_F(PredictorTest, ExpectedTimeComesFromTheGapsBetweenStarts) {
  Predictor m;
  for (int i = 0; i < 10; ++i) LearnRun(&m, "etl", {"fetch", "parse"});
  std::vector<TaskCandidate> c = m.PredictTasks("etl", {"fetch"}, nullptr);
  ASSERT_EQ(c[0].task_id, "parse");
  ASSERT_TRUE(c[0].expected_in_ms.has_value());
  EXPECT_DOUBLE_EQ(*c[0].expected_in_ms, 100);
  nlohmann::json timing = m.TaskTiming("etl", "fetch");
  EXPECT_EQ(timing["duration_ms"]["p50"], 50.0);
  EXPECT_EQ(timing["duration_ms"]["n"], 10);
  EXPECT_TRUE(timing["cold_cost_ms"].is_null());
  EXPECT_TRUE(m.TaskTiming("etl", "nope").is_null());
}

TEST_F(PredictorTest, StartUpCostIsColdMinusWarm) {
  Predictor m;
  for (int i = 0; i < 4; ++i) {
    std::string run = "r" + std::to_string(i);
    m.Learn({.chain_id = "c",
             .run_id = run,
             .task_id = "t",
             .start_ms = i * 1000,
             .end_ms = i * 1000 + 10,
             .cold = i % 2 == 0,
             .startup_ms = i % 2 == 0 ? 150.0 : 20.0});
  }
  EXPECT_DOUBLE_EQ(m.TaskTiming("c", "t")["cold_cost_ms"].get<double>(), 130.0);
}

TEST_F(PredictorTest, RecordsInEndOrderGetTheirContextByStartTime) {
  Predictor in_order, end_order;
  for (int i = 0; i < 5; ++i) {
    std::string run = "r" + std::to_string(i);
    int64_t t = i * 10'000;
    // a starts first and ends last; b and c start after it.
    Observation a{.chain_id = "p", .run_id = run, .task_id = "a", .start_ms = t, .end_ms = t + 900};
    Observation b{
        .chain_id = "p", .run_id = run, .task_id = "b", .start_ms = t + 100, .end_ms = t + 200};
    Observation c{
        .chain_id = "p", .run_id = run, .task_id = "c", .start_ms = t + 300, .end_ms = t + 400};
    for (const Observation* o : {&a, &b, &c}) in_order.Learn(*o);
    for (const Observation* o : {&b, &c, &a}) end_order.Learn(*o);
  }
  // Records that come in end order are placed by their start: c was learned after b, and a
  // (which came last) as the run's first task, so the run's context has a, b, c.
  EXPECT_EQ(in_order.PredictTasks("p", {"a"}, nullptr)[0].task_id, "b");
  EXPECT_EQ(end_order.PredictTasks("p", {"a", "b"}, nullptr)[0].task_id, "c");
  EXPECT_EQ(end_order.TaskTiming("p", "a")["duration_ms"]["p50"], 900.0);
}

TEST_F(PredictorTest, RunsOfDifferentChainsWithTheSameIdAreKeptApart) {
  Predictor m;
  auto learn = [&m](const char* chain, const char* task, int64_t start) {
    m.Learn({.chain_id = chain,
             .run_id = "run-1",
             .task_id = task,
             .start_ms = start,
             .end_ms = start + 5});
  };
  learn("imported", "a1", 0);
  learn("own", "b1", 10);
  learn("imported", "a2", 20);
  learn("own", "b2", 30);
  std::vector<TaskCandidate> c = m.PredictTasks("own", {"b1"}, nullptr);
  ASSERT_EQ(c[0].task_id, "b2");
  ASSERT_TRUE(c[0].expected_in_ms.has_value());  // b2 followed b1, not a2
  EXPECT_DOUBLE_EQ(*c[0].expected_in_ms, 20);
}

TEST_F(PredictorTest, PredictsTheNextChain) {
  Predictor m;
  for (int i = 0; i < 30; ++i) {
    LearnRun(&m, "build", {"compile"});
    LearnRun(&m, "test", {"unit"});
    LearnRun(&m, "deploy", {"push"});
  }
  EXPECT_EQ(m.PredictChains({"build"})[0].chain_id, "test");
  EXPECT_EQ(m.PredictChains({"test"})[0].chain_id, "deploy");
  std::vector<ChainCandidate> next = m.PredictChains();  // after the last: deploy
  EXPECT_EQ(next[0].chain_id, "build");
  EXPECT_GT(next[0].probability, 0.8);
  ASSERT_TRUE(next[0].expected_in_ms.has_value());
  EXPECT_DOUBLE_EQ(*next[0].expected_in_ms, 1100);  // one task of 100 ms + 1 s pause
  EXPECT_EQ(m.ChainsWithTask("unit"), std::vector<std::string>{"test"});
}

TEST_F(PredictorTest, UnknownChainHasNoCandidates) {
  Predictor m;
  EXPECT_TRUE(m.PredictTasks("nope", {}, nullptr).empty());
  EXPECT_TRUE(m.PredictChains().empty());
  EXPECT_FALSE(m.KnowsChain("nope"));
}

TEST_F(PredictorTest, ModelSurvivesItsPersistedForm) {
  Predictor m({.half_life = 300});
  ChainShape shape = Fan();
  for (int i = 0; i < 40; ++i) {
    LearnRun(&m, "fan", {"root", Branch(i, "a", "b", "c"), "join"});
    LearnRun(&m, "etl", {"fetch", "parse"});
  }
  nlohmann::json saved = nlohmann::json::parse(m.ToJson().dump());
  Predictor back;
  std::string err;
  ASSERT_TRUE(Predictor::FromJson(saved, &back, &err)) << err;
  EXPECT_EQ(back.ToJson(), m.ToJson());
  EXPECT_EQ(back.params().half_life, 300);
  for (const Tasks& started : {Tasks{}, Tasks{"root"}, Tasks{"root", "b"}}) {
    std::vector<TaskCandidate> a = m.PredictTasks("fan", started, &shape);
    std::vector<TaskCandidate> b = back.PredictTasks("fan", started, &shape);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].task_id, b[i].task_id);
      EXPECT_DOUBLE_EQ(a[i].probability, b[i].probability);
    }
  }
  EXPECT_EQ(back.PredictChains()[0].chain_id, m.PredictChains()[0].chain_id);
}

// PredictNext is PredictTasks for a run kept as it goes: over the same candidates it ranks them
// the same, with the same probabilities.
TEST_F(PredictorTest, PredictNextOverTheFrontierAgreesWithPredictTasks) {
  Predictor m;
  for (int i = 0; i < 20; ++i)
    LearnRun(&m, "route", {"router", Branch(i, "x", "y", "z"), "report"});
  ChainShape shape{.tasks = {"router", "x", "y", "z", "report"},
                   .weights = {1, 0.7, 0.2, 0.1, 1},
                   .deps = {{}, {0}, {0}, {0}, {1, 2, 3}},
                   .needs_all_deps = {true, true, true, true, false}};
  RunContext run = m.BeginRun("route");
  std::vector<TaskCandidate> first =
      m.PredictNext(&run, {{"router", 1}});  // the frontier of a run that started nothing
  ASSERT_EQ(first.size(), 1u);
  EXPECT_DOUBLE_EQ(first[0].probability, 1.0);
  m.Advance(&run, "router");
  // PredictTasks's candidates after router: the branches, and report (its trigger rule is not
  // all_success: the DAG does not rule it out).
  std::vector<TaskCandidate> next =
      m.PredictNext(&run, {{"x", 0.7}, {"y", 0.2}, {"z", 0.1}, {"report", 1}});
  std::vector<TaskCandidate> whole = m.PredictTasks("route", {"router"}, &shape);
  ASSERT_EQ(next.size(), 4u);
  ASSERT_EQ(whole.size(), 4u);
  for (size_t i = 0; i < next.size(); ++i) {
    EXPECT_EQ(next[i].task_id, whole[i].task_id);
    EXPECT_DOUBLE_EQ(next[i].probability, whole[i].probability);
    EXPECT_EQ(next[i].expected_in_ms, whole[i].expected_in_ms);
    EXPECT_EQ(next[i].unlikely, whole[i].unlikely);
  }
  EXPECT_EQ(next[0].task_id, "x");
  EXPECT_EQ(next[0].candidate, 0u);      // its place among the candidates given
  EXPECT_EQ(next[3].task_id, "report");  // never seen right after router
  EXPECT_LT(next[3].probability, 0.05);
  EXPECT_EQ(next[3].candidate, 3u);
}

// A run that began before history knew its chain: what history learns meanwhile is used.
TEST_F(PredictorTest, ARunContextPicksUpWhatHistoryLearnsWhileItGoes) {
  Predictor m;
  RunContext run = m.BeginRun("etl");
  m.Advance(&run, "fetch");
  std::vector<TaskCandidate> before = m.PredictNext(&run, {{"parse", 1}, {"load", 1}});
  EXPECT_DOUBLE_EQ(before[0].probability, 0.5);  // the prior alone
  for (int i = 0; i < 5; ++i) LearnRun(&m, "etl", {"fetch", "parse", "load"});
  std::vector<TaskCandidate> after = m.PredictNext(&run, {{"parse", 1}, {"load", 1}});
  EXPECT_EQ(after[0].task_id, "parse");
  EXPECT_GT(after[0].probability, 0.9);
  ASSERT_TRUE(after[0].expected_in_ms.has_value());
  EXPECT_EQ(*after[0].expected_in_ms, 100);
  // fetch, started before history knew it, now counts as started: load (always after parse)
  // stays unlikely until parse starts.
  EXPECT_TRUE(after[1].unlikely);
  m.Advance(&run, "parse");
  EXPECT_FALSE(m.PredictNext(&run, {{"load", 1}})[0].unlikely);
}

TEST_F(PredictorTest, RefusesAModelItCannotRead) {
  Predictor m;
  std::string err;
  EXPECT_FALSE(Predictor::FromJson({{"format", 99}}, &m, &err));
  EXPECT_NE(err.find("format"), std::string::npos);
  nlohmann::json j = Predictor().ToJson();
  j["params"]["max_order"] = 9;
  EXPECT_FALSE(Predictor::FromJson(j, &m, &err));
  EXPECT_NE(err.find("max_order"), std::string::npos);
  j = Predictor().ToJson();
  j["chains"] = {{{"id", "c"}, {"clock", 1}, {"tasks", {"a"}}, {"max_per_run", {1, 2}}}};
  EXPECT_FALSE(Predictor::FromJson(j, &m, &err));
}

}  // namespace
}  // namespace chainctl
