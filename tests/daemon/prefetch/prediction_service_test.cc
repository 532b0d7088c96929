// PredictionService with a real store, history and loop: trainings at open, on demand and by
// count, persistence across a reopen, online learning between trainings, and the records
// observed during a training kept in the model it swaps in.
#include "daemon/prefetch/prediction_service.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

// `runs` runs of `chain` starting `tasks` in order.
std::vector<HistoryRecord> Runs(const std::string& chain, const std::vector<std::string>& tasks,
                                int runs, int64_t t0 = 1'000'000) {
  std::vector<HistoryRecord> out;
  for (int i = 0; i < runs; ++i) {
    for (size_t k = 0; k < tasks.size(); ++k) {
      out.push_back(testing::SucceededRecord(chain + "-" + std::to_string(i), chain, tasks[k],
                                             t0 + i * 10'000 + static_cast<int64_t>(k) * 100));
    }
  }
  return out;
}

class PredictionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store"}, &err);
    ASSERT_TRUE(store_) << err;
    history_ = std::make_unique<History>(store_.get());
    registry_ = std::make_unique<Registry>(store_.get());
  }

  void TearDown() override {
    Close();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  void Append(std::vector<HistoryRecord> records) {
    std::string err;
    ASSERT_TRUE(history_->AppendNow(&records, &err)) << err;
  }

  // A new service on the same store, opened.
  void Open(PredictionOptions options = {}) {
    Close();
    service_ = std::make_unique<PredictionService>(&loop_, store_.get(), history_.get(),
                                                   registry_.get(), options);
    std::string err;
    ASSERT_TRUE(service_->Open(&err)) << err;
  }

  void Close() {
    if (!service_) return;
    service_->Shutdown();
    uv_run(&loop_, UV_RUN_DEFAULT);  // the training in flight, the timer's close
    service_.reset();
  }

  // Runs the loop until the training in flight (if any) is swapped in.
  void Settle() { uv_run(&loop_, UV_RUN_DEFAULT); }

  nlohmann::json Status() const { return service_->Status(); }

  std::string Next(const std::string& chain, const std::vector<std::string>& started) const {
    std::vector<TaskCandidate> c = service_->model().PredictTasks(chain, started, nullptr);
    return c.empty() ? "" : c[0].task_id;
  }

  TrainResult TrainNow() {
    std::optional<TrainResult> result;
    service_->Train([&result](const TrainResult& r) { result = r; });
    Settle();
    EXPECT_TRUE(result.has_value());
    return result.value_or(TrainResult{});
  }

  testing::ScopedTempDir tmp_;
  uv_loop_t loop_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<History> history_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<PredictionService> service_;
};

TEST_F(PredictionServiceTest, AnEmptyHistoryNeedsNoTraining) {
  Open();
  EXPECT_FALSE(Status()["training"]);
  EXPECT_EQ(Status()["version"], 0);
  EXPECT_EQ(Next("etl", {}), "");
}

TEST_F(PredictionServiceTest, OpenTrainsOnTheHistoryTheModelHasNotLearned) {
  Append(Runs("etl", {"fetch", "parse", "load"}, 5));
  Open();
  EXPECT_TRUE(Status()["training"]);
  Settle();
  EXPECT_FALSE(Status()["training"]);
  EXPECT_EQ(Status()["version"], 1);
  EXPECT_EQ(Status()["records"], 15);
  EXPECT_EQ(Status()["through_seq"], 15);
  EXPECT_EQ(Next("etl", {"fetch"}), "parse");
  EXPECT_EQ(Next("etl", {}), "fetch");
}

TEST_F(PredictionServiceTest, TheTrainedModelIsPersistedAndUsedAfterAReopen) {
  Append(Runs("etl", {"fetch", "parse", "load"}, 5));
  Open();
  Settle();
  TrainResult r = TrainNow();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.version, 2);
  nlohmann::json before = service_->model().ToJson();

  Open();
  EXPECT_FALSE(Status()["training"]);  // nothing new in the history
  EXPECT_EQ(Status()["version"], 2);
  EXPECT_EQ(service_->model().ToJson(), before);

  Append(Runs("etl", {"fetch", "parse", "load"}, 1, 9'000'000));
  Open();
  EXPECT_TRUE(Status()["training"]);  // the history has moved on
  Settle();
  EXPECT_EQ(Status()["version"], 3);
  EXPECT_EQ(Status()["records"], 18);
}

TEST_F(PredictionServiceTest, OtherParametersOrAnUnreadableModelMeanATraining) {
  Append(Runs("etl", {"fetch", "parse"}, 3));
  Open();
  Settle();
  PredictionOptions other;
  other.params.half_life = 10;
  Open(other);
  EXPECT_TRUE(Status()["training"]);
  Settle();
  EXPECT_EQ(Status()["params"]["half_life"], 10.0);

  std::string err;
  ASSERT_TRUE(store_->Write(
      [](WriteTxn& txn, std::string* e) {
        return txn.Put(Db::kModel, "current", EncodeValue(1, "{not json"), e);
      },
      &err))
      << err;
  Open(other);
  EXPECT_TRUE(Status()["training"]);
  Settle();
  EXPECT_EQ(Next("etl", {"fetch"}), "parse");
}

TEST_F(PredictionServiceTest, ObservedRecordsAreLearnedAtOnce) {
  Open();
  for (const HistoryRecord& r : Runs("etl", {"fetch", "parse", "load"}, 3)) service_->Observe(r);
  EXPECT_EQ(Next("etl", {"fetch"}), "parse");
  EXPECT_EQ(Status()["observed_since_training"], 9);
  EXPECT_FALSE(Status()["training"]);  // under train_every
}

TEST_F(PredictionServiceTest, TrainEveryRecordsStartsATraining) {
  Open({.train_every = 4});
  std::vector<HistoryRecord> records = Runs("etl", {"fetch", "parse"}, 2);
  Append(records);
  for (size_t i = 0; i < 3; ++i) service_->Observe(records[i]);
  EXPECT_FALSE(Status()["training"]);
  service_->Observe(records[3]);
  EXPECT_TRUE(Status()["training"]);
  EXPECT_EQ(Status()["observed_since_training"], 0);
  Settle();
  EXPECT_EQ(Status()["records"], 4);
}

// A training reads the whole history, so with a large one the next waits for a tenth of it:
// the work of all trainings stays linear in the records appended (the soak of issue 15 saw a
// training of 165,000 records every 1,000 new ones, 4 s of every 12).
TEST_F(PredictionServiceTest, TheNextTrainingWaitsForATenthOfTheHistoryWhenThatIsMore) {
  std::vector<HistoryRecord> old = Runs("etl", {"fetch", "parse"}, 20);  // 40 records
  Append(old);
  Open({.train_every = 2});
  Settle();
  ASSERT_EQ(Status()["records"], 40);
  std::vector<HistoryRecord> more = Runs("etl", {"fetch", "parse"}, 2, 5'000'000);
  Append(more);
  for (size_t i = 0; i < 3; ++i) service_->Observe(more[i]);
  EXPECT_FALSE(Status()["training"]) << "3 new records: over train_every, under 40 / 10";
  service_->Observe(more[3]);
  EXPECT_TRUE(Status()["training"]);
  Settle();
  EXPECT_EQ(Status()["records"], 44);
}

TEST_F(PredictionServiceTest, RecordsObservedDuringATrainingAreInTheModelItSwapsIn) {
  Append(Runs("etl", {"fetch", "parse"}, 3));
  Open();
  ASSERT_TRUE(Status()["training"]);
  // Not in the history the training reads: only the replay can teach it.
  for (const HistoryRecord& r : Runs("late", {"a", "b"}, 2)) service_->Observe(r);
  Settle();
  EXPECT_EQ(Status()["version"], 1);
  EXPECT_EQ(Next("late", {"a"}), "b");
  EXPECT_EQ(Next("etl", {"fetch"}), "parse");
}

TEST_F(PredictionServiceTest, ATrainAskedForDuringATrainingGetsTheNextOne) {
  Append(Runs("etl", {"fetch", "parse"}, 3));
  Open();
  ASSERT_TRUE(Status()["training"]);
  std::optional<TrainResult> result;
  service_->Train([&result](const TrainResult& r) { result = r; });
  Settle();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->version, 2);  // not the one in flight when it was asked
}

TEST_F(PredictionServiceTest, ATrainAfterShutdownIsRefused) {
  Open();
  service_->Shutdown();
  std::optional<TrainResult> result;
  service_->Train([&result](const TrainResult& r) { result = r; });
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->ok);
  EXPECT_NE(result->error.find("shutting down"), std::string::npos);
}

TEST(ShapeOfDefinitionTest, ReadsTasksWeightsDependenciesAndTriggerRules) {
  nlohmann::json definition = nlohmann::json::parse(R"({
    "chain_id": "fan",
    "tasks": [
      {"task_id": "a", "command": "true"},
      {"task_id": "b", "command": "true", "dependencies": ["a"], "prefetch_weight": 0.25},
      {"task_id": "c", "command": "true", "dependencies": ["a", "b"],
       "trigger_rule": "one_success"}
    ]})");
  ChainShape shape = ShapeOfDefinition(definition);
  EXPECT_EQ(shape.tasks, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(shape.weights, (std::vector<double>{1.0, 0.25, 1.0}));
  EXPECT_EQ(shape.deps, (std::vector<std::vector<int>>{{}, {0}, {0, 1}}));
  EXPECT_EQ(shape.needs_all_deps, (std::vector<bool>{true, true, false}));
}

}  // namespace
}  // namespace chainctl::daemon
