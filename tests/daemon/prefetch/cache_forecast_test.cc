// CacheForecast (daemon/prefetch/cache_forecast.h): a task is expected to be a cache hit exactly
// when its sources are those it last ran with; answers are kept for the TTL, so checks are
// counted, never timed (a fake clock moves time).
#include "daemon/prefetch/cache_forecast.h"

#include <gtest/gtest.h>
#include <uv.h>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

class CacheForecastTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    tmp_.WriteFile("proj/src/a.py", "a");
    tmp_.WriteFile("proj/src/b.py", "b");
    cache_ = std::make_unique<TaskCache>(TaskCache::Options{.dir = tmp_.path() + "/cache"});
    std::string err;
    ASSERT_TRUE(cache_->Open(&err)) << err;
    forecast_ = std::make_unique<CacheForecast>(
        &loop_, cache_.get(), &memo_, [this] { ++known_; }, 1000, [this] { return now_; });
    spec_.task_id = "build";
    spec_.source_dir = tmp_.path() + "/proj";
    spec_.sources = {"src/*.py"};
  }
  void TearDown() override {
    forecast_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // What the task "last ran with": the sources as they are now.
  void RecordSourcesAsTheyAre() {
    json sources = json::object();
    for (const char* name : {"a.py", "b.py"}) {
      sources[std::string("src/") + name] =
          HashBytes(testing::ReadFileOrDie(spec_.source_dir + "/src/" + name)).Hex();
    }
    std::string err;
    ASSERT_TRUE(cache_->RecordLast("chain.build", {{"sources", sources}}, &err)) << err;
  }

  // Expected after the check it starts has reported back.
  std::optional<bool> Settled() {
    forecast_->Expected("chain", spec_);
    uv_run(&loop_, UV_RUN_DEFAULT);
    return forecast_->Expected("chain", spec_);
  }

  testing::ScopedTempDir tmp_;
  uv_loop_t loop_;
  HashMemo memo_;
  std::unique_ptr<TaskCache> cache_;
  std::unique_ptr<CacheForecast> forecast_;
  TaskSpec spec_;
  int64_t now_ = 1'000'000;
  int known_ = 0;
};

TEST_F(CacheForecastTest, ATaskWithCachingOffIsNeverExpectedAndCostsNothing) {
  TaskSpec off = spec_;
  off.sources.clear();
  EXPECT_EQ(forecast_->Expected("chain", off), false);
  off = spec_;
  off.cache = false;
  EXPECT_EQ(forecast_->Expected("chain", off), false);
  off = spec_;
  off.source_dir.clear();
  EXPECT_EQ(forecast_->Expected("chain", off), false);
  EXPECT_EQ(forecast_->checks(), 0u);
}

TEST_F(CacheForecastTest, UnknownUntilTheFirstCheckThenAMissWithoutARecord) {
  EXPECT_EQ(forecast_->Expected("chain", spec_), std::nullopt);
  EXPECT_EQ(forecast_->Expected("chain", spec_), std::nullopt);
  EXPECT_EQ(forecast_->checks(), 1u) << "one check in flight at a time";
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(forecast_->Expected("chain", spec_), false) << "never ran: nothing to restore";
  EXPECT_EQ(known_, 1);
}

TEST_F(CacheForecastTest, AHitWhenTheSourcesAreThoseItLastRanWith) {
  RecordSourcesAsTheyAre();
  EXPECT_EQ(Settled(), true);
  EXPECT_EQ(known_, 1);
  // Within the TTL the answer is kept: no new check.
  now_ += 999;
  EXPECT_EQ(forecast_->Expected("chain", spec_), true);
  EXPECT_EQ(forecast_->checks(), 1u);
  // An edit is seen by the first check after the TTL.
  tmp_.WriteFile("proj/src/b.py", "edited");
  now_ += 1;
  EXPECT_EQ(Settled(), false);
  EXPECT_EQ(forecast_->checks(), 2u);
  EXPECT_EQ(known_, 2) << "a changed answer wakes the prefetcher";
  // An added source is a change too.
  RecordSourcesAsTheyAre();
  now_ += 1000;
  EXPECT_EQ(Settled(), true);
  tmp_.WriteFile("proj/src/c.py", "new");
  now_ += 1000;
  EXPECT_EQ(Settled(), false);
}

TEST_F(CacheForecastTest, AnUnchangedAnswerDoesNotWakeThePrefetcher) {
  RecordSourcesAsTheyAre();
  EXPECT_EQ(Settled(), true);
  now_ += 5000;
  EXPECT_EQ(Settled(), true);
  EXPECT_EQ(forecast_->checks(), 2u);
  EXPECT_EQ(known_, 1);
}

}  // namespace
}  // namespace chainctl::daemon
