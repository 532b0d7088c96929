#include "daemon/store/store_writer.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

// Faults are injected through the transaction (leveldb's fault_injection_test in spirit): an
// op that fails while `disk_full` is set makes its whole commit fail, as ENOSPC would.
class StoreWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store", .initial_map_size = 1 << 22}, &err);
    ASSERT_TRUE(store_) << err;
    // The default delay: the writes made before a Sync go in one commit.
    writer_ = std::make_unique<StoreWriter>(&loop_, store_.get());
  }
  void TearDown() override {
    writer_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  // Adds an op that fails while disk_full_ is set.
  void AddFaultyOp() {
    bool* full = &disk_full_;
    writer_->Add([full](WriteTxn&, std::string* err) {
      if (!*full) return true;
      *err = "No space left on device (injected)";
      return false;
    });
  }

  // Runs the loop until `done` or a bound of iterations (the retry timer keeps it alive).
  void RunUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 10000 && !done(); ++i) uv_run(&loop_, UV_RUN_ONCE);
    ASSERT_TRUE(done());
  }

  std::optional<std::string> Get(const std::string& key) {
    std::string value, err;
    bool found = false;
    EXPECT_TRUE(store_->Read(
        [&](ReadTxn& txn, std::string* e) { return txn.Get(Db::kRuns, key, &value, &found, e); },
        &err))
        << err;
    return found ? std::optional<std::string>(value) : std::nullopt;
  }

  testing::ScopedTempDir tmp_;
  uv_loop_t loop_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StoreWriter> writer_;
  bool disk_full_ = false;
};

TEST_F(StoreWriterTest, CommitsAndCallsSync) {
  writer_->Put(Db::kRuns, "a", "1");
  std::optional<bool> synced;
  writer_->Sync([&](bool ok, const std::string&) { synced = ok; });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(synced, true);
  EXPECT_EQ(Get("a"), "1");
  EXPECT_FALSE(writer_->degraded());
}

// Issue 15, item 3: a failed commit lost its writes and nobody waiting was told.
TEST_F(StoreWriterTest, Issue15AFailedCommitIsKeptAndRetriedUntilItSucceeds) {
  disk_full_ = true;
  writer_->Put(Db::kRuns, "a", "old");
  writer_->Put(Db::kRuns, "b", "kept");
  AddFaultyOp();
  std::vector<bool> synced;
  writer_->Sync([&](bool ok, const std::string&) { synced.push_back(ok); });
  RunUntil([&] { return writer_->degraded(); });
  EXPECT_EQ(writer_->failure(), "No space left on device (injected)");
  EXPECT_GT(writer_->failing_since_ms(), 0);
  EXPECT_EQ(writer_->unstored(), 3u);  // a, b and the op
  EXPECT_NE(writer_->DegradedMessage().find("new runs and chain writes are refused"),
            std::string::npos);
  EXPECT_TRUE(synced.empty());
  // Writes made meanwhile wait with them; a newer value of the same key wins.
  writer_->Put(Db::kRuns, "a", "new");
  writer_->Sync([&](bool ok, const std::string&) { synced.push_back(ok); });
  // Still failing: nothing is stored, nobody is told.
  size_t commits = writer_->commits();
  for (int i = 0; i < 3; ++i) uv_run(&loop_, UV_RUN_ONCE);
  EXPECT_TRUE(writer_->degraded());
  EXPECT_EQ(Get("b"), std::nullopt);
  EXPECT_TRUE(synced.empty());
  // Space comes back: the next retry stores everything, in one commit, and tells both.
  disk_full_ = false;
  RunUntil([&] { return synced.size() == 2; });
  EXPECT_EQ(synced, (std::vector<bool>{true, true}));
  EXPECT_FALSE(writer_->degraded());
  EXPECT_EQ(writer_->failure(), "");
  EXPECT_EQ(writer_->commits(), commits + 1);
  EXPECT_EQ(Get("a"), "new");
  EXPECT_EQ(Get("b"), "kept");
  // Back to normal: the next write commits at once.
  writer_->Put(Db::kRuns, "c", "3");
  bool idle = false;
  writer_->WhenIdle([&] { idle = true; });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(idle);
  EXPECT_EQ(Get("c"), "3");
}

TEST_F(StoreWriterTest, Issue15GivingUpDropsTheWritesAndSaysSo) {
  disk_full_ = true;
  writer_->Put(Db::kRuns, "a", "1");
  AddFaultyOp();
  std::optional<bool> synced;
  writer_->Sync([&](bool ok, const std::string&) { synced = ok; });
  RunUntil([&] { return writer_->degraded(); });
  bool idle = false;
  writer_->WhenIdle([&] { idle = true; });
  EXPECT_FALSE(idle);
  writer_->GiveUpOnFailure();  // chaind stops: one more try, then the writes are dropped
  RunUntil([&] { return idle; });
  EXPECT_EQ(synced, false);
  EXPECT_EQ(Get("a"), std::nullopt);
}

}  // namespace
}  // namespace chainctl::daemon
