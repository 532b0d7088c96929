#include "daemon/store/history.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(uint64_t retention = kDefaultHistoryRetention, size_t map_size = size_t{1} << 30) {
    history_.reset();
    store_.reset();
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store", .initial_map_size = map_size}, &err);
    ASSERT_TRUE(store_) << err;
    history_ = std::make_unique<History>(store_.get(), retention);
  }

  // Appends in one transaction; returns the seqs given.
  std::vector<uint64_t> Append(std::vector<HistoryRecord> records) {
    std::string err;
    EXPECT_TRUE(store_->Write(
        [&](WriteTxn& txn, std::string* e) { return history_->Append(txn, &records, e); }, &err))
        << err;
    std::vector<uint64_t> seqs;
    for (const HistoryRecord& r : records) seqs.push_back(r.seq);
    return seqs;
  }

  std::vector<HistoryRecord> Find(const HistoryQuery& query) {
    std::vector<HistoryRecord> out;
    std::string err;
    EXPECT_TRUE(history_->Find(query, &out, &err)) << err;
    return out;
  }

  std::vector<uint64_t> Seqs(const HistoryQuery& query) {
    std::vector<uint64_t> seqs;
    for (const HistoryRecord& r : Find(query)) seqs.push_back(r.seq);
    return seqs;
  }

  uint64_t Count() {
    uint64_t count = 0;
    std::string err;
    EXPECT_TRUE(history_->Count(&count, &err)) << err;
    return count;
  }

  // Every key of the history database.
  size_t KeyCount() {
    size_t keys = 0;
    std::string err;
    EXPECT_TRUE(store_->Read(
        [&](ReadTxn& txn, std::string* e) {
          return txn.Scan(
              Db::kHistory, "", false,
              [&](std::string_view, std::string_view) {
                ++keys;
                return true;
              },
              e);
        },
        &err))
        << err;
    return keys;
  }

  // Two chains, three runs: seq 1..12 with start = 1000 * seq.
  void AppendSample() {
    std::vector<HistoryRecord> records;
    for (int i = 1; i <= 12; ++i) {
      std::string run = i <= 4 ? "r1" : i <= 8 ? "r2" : "r3";
      std::string chain = i <= 8 ? "etl" : "report";
      std::string task = i % 2 == 1 ? "extract" : "load";
      records.push_back(testing::SucceededRecord(run, chain, task, 1000 * i));
    }
    Append(std::move(records));
  }

  testing::ScopedTempDir tmp_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<History> history_;
};

using SeqList = std::vector<uint64_t>;

TEST_F(HistoryTest, AssignsSeqsAcrossAppendsAndReopening) {
  EXPECT_EQ(Count(), 0u);
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "a", 1),
                    testing::SucceededRecord("r", "c", "b", 2)}),
            (SeqList{1, 2}));
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "c", 3)}), SeqList{3});
  Reopen();
  EXPECT_EQ(Count(), 3u);
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "d", 4)}), SeqList{4});
  std::vector<HistoryRecord> all = Find({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].task_id, "c");
  EXPECT_EQ(all[2].seq, 3u);
  EXPECT_EQ(all[2], [] {
    HistoryRecord r = testing::SucceededRecord("r", "c", "c", 3);
    r.seq = 3;
    return r;
  }());
}

TEST_F(HistoryTest, AppendNowSetsTheSeqs) {
  Append({testing::SucceededRecord("r", "c", "a", 1)});
  std::vector<HistoryRecord> records = {testing::SucceededRecord("r", "c", "b", 2),
                                        testing::SucceededRecord("r", "c", "c", 3)};
  std::string err;
  ASSERT_TRUE(history_->AppendNow(&records, &err)) << err;
  EXPECT_EQ(records[0].seq, 2u);
  EXPECT_EQ(records[1].seq, 3u);
  EXPECT_EQ(Find({}), (std::vector<HistoryRecord>{Find({})[0], records[0], records[1]}));
}

TEST_F(HistoryTest, ImportSkipsRecordsStoredAlreadyOrRepeated) {
  HistoryRecord a = testing::SucceededRecord("r", "c", "a", 1);
  Append({a});
  // Another attempt, instance or start is another record; the same key is the same record.
  HistoryRecord retry = a, instance = a, later = a, other_run = a;
  retry.attempt = 2;
  instance.instance_id = "job-7";
  later.start_unix_ms += 1;
  later.end_unix_ms += 1;
  other_run.run_id = "r2";
  std::vector<HistoryRecord> records = {a, retry, instance, retry, later, other_run, a};
  size_t skipped = 99;
  std::string err;
  ASSERT_TRUE(history_->Import(&records, &skipped, &err)) << err;
  EXPECT_EQ(skipped, 3u);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].attempt, 2);
  EXPECT_EQ(records[1].instance_id, "job-7");
  EXPECT_EQ(records[2].start_unix_ms, a.start_unix_ms + 1);
  EXPECT_EQ(records[3].run_id, "r2");
  EXPECT_EQ(Seqs({}), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(records[3].seq, 5u);

  // Imported again: nothing new.
  std::vector<HistoryRecord> again = {a, retry, instance, later, other_run};
  ASSERT_TRUE(history_->Import(&again, &skipped, &err)) << err;
  EXPECT_TRUE(again.empty());
  EXPECT_EQ(skipped, 5u);
  EXPECT_EQ(Seqs({}).size(), 5u);
}

TEST_F(HistoryTest, ImportOfAnInvalidRecordStoresNothingAndKeepsTheRecords) {
  HistoryRecord bad = testing::SucceededRecord("r", "c", "a", 1);
  bad.task_id = "";
  std::vector<HistoryRecord> records = {testing::SucceededRecord("r", "c", "b", 2), bad};
  size_t skipped = 0;
  std::string err;
  EXPECT_FALSE(history_->Import(&records, &skipped, &err));
  EXPECT_NE(err.find("history record 2 of 2"), std::string::npos) << err;
  EXPECT_EQ(records.size(), 2u);
  EXPECT_TRUE(Seqs({}).empty());
}

TEST_F(HistoryTest, StoresEveryField) {
  HistoryRecord r = testing::FullHistoryRecord();
  Append({r});
  std::vector<HistoryRecord> all = Find({});
  ASSERT_EQ(all.size(), 1u);
  r.seq = 1;
  EXPECT_EQ(all[0], r);
}

TEST_F(HistoryTest, AbortedAppendLeavesSeqUnchanged) {
  Append({testing::SucceededRecord("r", "c", "a", 1)});
  std::string err;
  std::vector<HistoryRecord> records = {testing::SucceededRecord("r", "c", "b", 2),
                                        testing::SucceededRecord("r", "c", "c", 3)};
  EXPECT_FALSE(store_->Write(
      [&](WriteTxn& txn, std::string* e) {
        if (!history_->Append(txn, &records, e)) return false;
        *e = "run state could not be written";
        return false;
      },
      &err));
  EXPECT_EQ(err, "run state could not be written");
  EXPECT_EQ(records[1].seq, 3u);  // assigned in the aborted transaction
  EXPECT_EQ(Count(), 1u);
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "d", 4)}), SeqList{2});
  EXPECT_EQ(Seqs({.task_id = "b"}), SeqList{});
}

// Store::Write runs the callback again after growing the map: seqs come from the transaction.
TEST_F(HistoryTest, SeqsSurviveARetriedTransaction) {
  Reopen(kDefaultHistoryRetention, 64 << 10);
  Append({testing::SucceededRecord("r", "c", "first", 1)});
  std::vector<HistoryRecord> records;
  for (int i = 0; i < 2000; ++i)
    records.push_back(testing::SucceededRecord("r", "c", "t" + std::to_string(i), i));
  int calls = 0;
  std::string err;
  ASSERT_TRUE(store_->Write(
      [&](WriteTxn& txn, std::string* e) {
        ++calls;
        return history_->Append(txn, &records, e);
      },
      &err))
      << err;
  EXPECT_GT(calls, 1);
  EXPECT_EQ(records.front().seq, 2u);
  EXPECT_EQ(records.back().seq, 2001u);
  EXPECT_EQ(Count(), 2001u);
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "last", 1)}), SeqList{2002});
}

TEST_F(HistoryTest, RejectsInvalidRecordsAndWritesNothing) {
  HistoryRecord bad = testing::SucceededRecord("r", "c", "", 1);
  std::string err;
  std::vector<HistoryRecord> records = {testing::SucceededRecord("r", "c", "a", 1), bad};
  EXPECT_FALSE(history_->AppendNow(&records, &err));
  EXPECT_EQ(err, "history record 2 of 2: \"task_id\" is empty");
  bad = testing::SucceededRecord("r", "c", "t", 1);
  bad.status = "skipped";
  records = {bad};
  EXPECT_FALSE(history_->AppendNow(&records, &err));
  EXPECT_EQ(err,
            "history record 1 of 1: \"status\" must be \"succeeded\", \"failed\" or "
            "\"cancelled\"");
  EXPECT_EQ(Count(), 0u);
  EXPECT_EQ(KeyCount(), 0u);
}

TEST_F(HistoryTest, FindsByRunTaskAndChain) {
  AppendSample();
  EXPECT_EQ(Seqs({.run_id = "r2"}), (SeqList{5, 6, 7, 8}));
  EXPECT_EQ(Seqs({.task_id = "extract"}), (SeqList{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(Seqs({.chain_id = "report"}), (SeqList{9, 10, 11, 12}));
  EXPECT_EQ(Seqs({.task_id = "load", .run_id = "r1"}), (SeqList{2, 4}));
  EXPECT_EQ(Seqs({.task_id = "load", .chain_id = "report"}), (SeqList{10, 12}));
  EXPECT_EQ(Seqs({.task_id = "load", .chain_id = "report", .run_id = "r1"}), SeqList{});
  EXPECT_EQ(Seqs({.run_id = "r"}), SeqList{});  // not a prefix match
  EXPECT_EQ(Seqs({.run_id = "r9"}), SeqList{});
  EXPECT_EQ(Seqs({.run_id = std::string("r1\0", 3)}), SeqList{});
  EXPECT_EQ(Seqs({.task_id = "extract", .limit = 2}), (SeqList{1, 3}));
  EXPECT_EQ(Seqs({.task_id = "extract", .limit = 2, .newest_first = true}), (SeqList{11, 9}));
  EXPECT_EQ(Seqs({.limit = 0}), SeqList{});
  std::vector<HistoryRecord> r2 = Find({.run_id = "r2", .limit = 1});
  ASSERT_EQ(r2.size(), 1u);
  EXPECT_EQ(r2[0], [] {
    HistoryRecord r = testing::SucceededRecord("r2", "etl", "extract", 5000);
    r.seq = 5;
    return r;
  }());
}

TEST_F(HistoryTest, FindsByTime) {
  AppendSample();
  EXPECT_EQ(Seqs({.since_unix_ms = 3000, .until_unix_ms = 6000}), (SeqList{3, 4, 5}));
  EXPECT_EQ(Seqs({.since_unix_ms = 11000}), (SeqList{11, 12}));
  EXPECT_EQ(Seqs({.until_unix_ms = 2001}), (SeqList{1, 2}));
  EXPECT_EQ(Seqs({.task_id = "load", .since_unix_ms = 3000, .until_unix_ms = 9000}),
            (SeqList{4, 6, 8}));
  EXPECT_EQ(Seqs({.run_id = "r3", .since_unix_ms = 10000, .newest_first = true}),
            (SeqList{12, 11, 10}));
  EXPECT_EQ(Seqs({.since_unix_ms = 5000, .until_unix_ms = 5000}), SeqList{});
}

TEST_F(HistoryTest, PagesInBothDirections) {
  AppendSample();
  for (bool newest_first : {false, true}) {
    for (const std::string& chain : {std::string(), std::string("etl")}) {
      HistoryQuery query{.chain_id = chain, .limit = 3, .newest_first = newest_first};
      SeqList all = Seqs({.chain_id = chain, .newest_first = newest_first});
      SeqList paged;
      for (int page = 0; page < 10; ++page) {
        SeqList got = Seqs(query);
        if (got.empty()) break;
        EXPECT_LE(got.size(), 3u);
        paged.insert(paged.end(), got.begin(), got.end());
        (newest_first ? query.before_seq : query.after_seq) = got.back();
      }
      EXPECT_EQ(paged, all) << "chain '" << chain << "' newest_first " << newest_first;
      EXPECT_EQ(all.size(), chain.empty() ? 12u : 8u);
    }
  }
  EXPECT_EQ(Seqs({.after_seq = 3, .before_seq = 7}), (SeqList{4, 5, 6}));
  EXPECT_EQ(Seqs({.after_seq = 3, .before_seq = 7, .newest_first = true}), (SeqList{6, 5, 4}));
  EXPECT_EQ(Seqs({.task_id = "load", .after_seq = 3, .before_seq = 9}), (SeqList{4, 6, 8}));
  EXPECT_EQ(Seqs({.after_seq = 6, .before_seq = 7}), SeqList{});
  EXPECT_EQ(Seqs({.before_seq = 1}), SeqList{});
  EXPECT_EQ(Seqs({.after_seq = UINT64_MAX}), SeqList{});
  EXPECT_EQ(Seqs({.after_seq = 100}), SeqList{});
}

TEST_F(HistoryTest, RetentionDropsTheOldestWithTheirIndexKeys) {
  Reopen(/*retention=*/10);
  for (int batch = 0; batch < 5; ++batch) {
    std::vector<HistoryRecord> records;
    for (int i = 0; i < 5; ++i) {
      int n = batch * 5 + i + 1;  // 1..25
      records.push_back(testing::SucceededRecord("run-" + std::to_string(n % 3),
                                                 "chain-" + std::to_string(n % 2),
                                                 "task-" + std::to_string(n), n));
    }
    Append(std::move(records));
  }
  EXPECT_EQ(Count(), 10u);
  EXPECT_EQ(Seqs({}), (SeqList{16, 17, 18, 19, 20, 21, 22, 23, 24, 25}));
  EXPECT_EQ(Seqs({.task_id = "task-15"}), SeqList{});
  EXPECT_EQ(Seqs({.task_id = "task-16"}), SeqList{16});
  EXPECT_EQ(Seqs({.run_id = "run-0"}), (SeqList{18, 21, 24}));
  EXPECT_EQ(Seqs({.chain_id = "chain-1"}), (SeqList{17, 19, 21, 23, 25}));
  EXPECT_EQ(KeyCount(), 1 + 10 * 4u);  // meta, and 4 keys per record kept
  // A single append larger than the limit keeps its newest.
  std::vector<HistoryRecord> big;
  for (int i = 0; i < 12; ++i) big.push_back(testing::SucceededRecord("big", "c", "t", 100 + i));
  Append(std::move(big));
  EXPECT_EQ(Count(), 10u);
  EXPECT_EQ(Seqs({}).front(), 28u);
  EXPECT_EQ(Seqs({.run_id = "big"}).size(), 10u);
  EXPECT_EQ(KeyCount(), 1 + 10 * 4u);
  // Reopening with a lower limit drops more on the next append.
  Reopen(/*retention=*/3);
  EXPECT_EQ(Append({testing::SucceededRecord("r", "c", "t", 1)}), SeqList{38});
  EXPECT_EQ(Seqs({}), (SeqList{36, 37, 38}));
  EXPECT_EQ(KeyCount(), 1 + 3 * 4u);
}

TEST_F(HistoryTest, RunQueryReadsOnlyThatRunsRecords) {
  std::vector<HistoryRecord> records;
  for (int i = 0; i < 20000; ++i) {
    records.push_back(testing::SucceededRecord("other-" + std::to_string(i % 50), "c", "t", i));
    if (i % 4000 == 0) records.push_back(testing::SucceededRecord("wanted", "c", "t", i));
  }
  ASSERT_TRUE([&] {
    std::string err;
    bool ok = history_->AppendNow(&records, &err);
    EXPECT_TRUE(ok) << err;
    return ok;
  }());
  EXPECT_EQ(Count(), 20005u);
  uint64_t before = history_->records_decoded();
  std::vector<HistoryRecord> wanted = Find({.run_id = "wanted"});
  EXPECT_EQ(wanted.size(), 5u);
  EXPECT_EQ(history_->records_decoded() - before, 5u);
  before = history_->records_decoded();
  wanted = Find({.run_id = "wanted", .limit = 2, .newest_first = true});
  ASSERT_EQ(wanted.size(), 2u);
  EXPECT_EQ(wanted[0].start_unix_ms, 16000);
  EXPECT_EQ(history_->records_decoded() - before, 2u);
  before = history_->records_decoded();
  EXPECT_EQ(Find({.limit = 1000, .newest_first = true}).size(), 1000u);
  EXPECT_EQ(history_->records_decoded() - before, 1000u);
}

}  // namespace
}  // namespace chainctl::daemon
