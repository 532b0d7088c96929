// The offline evaluation protocol and its baselines, on histories small enough to score by hand.
#include "common/predict/model_eval.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl {
namespace {

const double kMiss = -std::log(kLogLossFloor);

TEST(ModelEvalTest, BaselinesScoreAsTheProtocolSays) {
  // Given out of order: the protocol sorts by (start, end, task_id).
  std::vector<HistoryRecord> records{
      testing::SucceededRecord("r2", "c", "c", 11), testing::SucceededRecord("r1", "c", "a", 0),
      testing::SucceededRecord("r2", "c", "a", 10), testing::SucceededRecord("r1", "c", "b", 1)};
  EvalReport report = EvaluateModel(&records, PredictorParams{});
  EXPECT_EQ(report.records, 4u);
  EXPECT_EQ(report.runs, 2u);
  // r1 a: nothing known (floor). r1 b after a: frequency {a} (miss). r2 a: frequency {a: 1,
  // b: 1}, the tie to a (hit, p 0.5). r2 c after a: markov1 {b}, frequency {a: 2, b: 1} (miss).
  EXPECT_DOUBLE_EQ(report.frequency.top1, 0.25);
  EXPECT_DOUBLE_EQ(report.frequency.top3, 0.25);
  EXPECT_NEAR(report.frequency.logloss, (3 * kMiss + std::log(2.0)) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(report.markov1.top1, 0.25);
  EXPECT_NEAR(report.markov1.logloss, (3 * kMiss + std::log(2.0)) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(report.markov2.top1, 0.25);
  // The model puts some probability everywhere it can: its log-loss is lower.
  EXPECT_LT(report.model.logloss, report.frequency.logloss);
  EXPECT_EQ(records[0].task_id, "a");  // sorted in place
}

TEST(ModelEvalTest, Markov2TellsContextsApartThatMarkov1Mixes) {
  // a b c, d b e, a b c, d b e: after b, only the task before it tells c from e.
  std::vector<HistoryRecord> records;
  int64_t t = 0;
  for (int run = 0; run < 4; ++run) {
    std::vector<std::string> tasks = run % 2 == 0 ? std::vector<std::string>{"a", "b", "c"}
                                                  : std::vector<std::string>{"d", "b", "e"};
    for (const std::string& task : tasks)
      records.push_back(testing::SucceededRecord(std::to_string(run), "c", task, t++));
  }
  EvalReport report = EvaluateModel(&records, PredictorParams{});
  // markov2 hits in runs 3 and 4: b after a (or d, through markov1), then c (or e) after the
  // pair. markov1 hits both b's, c after b (tie c, e: c by id), but not e (c seen twice).
  EXPECT_NEAR(report.markov2.top1, 4.0 / 12, 1e-12);
  EXPECT_NEAR(report.markov1.top1, 3.0 / 12, 1e-12);
}

TEST(ModelEvalTest, ChainFilterKeepsOneChain) {
  std::vector<HistoryRecord> records{testing::SucceededRecord("r1", "a", "t", 0),
                                     testing::SucceededRecord("r2", "b", "u", 1),
                                     testing::SucceededRecord("r3", "a", "t", 2)};
  EvalReport report = EvaluateModel(&records, PredictorParams{}, "a");
  EXPECT_EQ(report.records, 2u);
  EXPECT_EQ(report.runs, 2u);
  nlohmann::json j = report.ToJson();
  EXPECT_EQ(j["records"], 2);
  EXPECT_TRUE(j["baselines"]["markov2"].contains("logloss"));
  EXPECT_TRUE(j["model"].contains("top3"));
}

}  // namespace
}  // namespace chainctl
