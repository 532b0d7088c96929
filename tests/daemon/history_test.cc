#include "daemon/history.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

// Lines of /work/shared/traces/flowbench/{somospie,pycbc_inference}.jsonl.gz, copied.
const char* const kFlowBenchLines[] = {
    R"({"run_id":"somospie-run0001","chain_id":"somospie",)"
    R"("task_id":"create_dir_somospie_0_condorpool",)"
    R"("instance_id":"create_dir_somospie_0_condorpool",)"
    R"("start":1711562944.0,"end":1711562949.0,"status":"succeeded","cpu_s":0.3})",
    R"({"run_id":"somospie-run0001","chain_id":"somospie","task_id":"get_sm",)"
    R"("instance_id":"get_sm_ID0000015","start":1711562978.0,"end":1711563014.0,)"
    R"("status":"succeeded","bytes_in":440090843,"bytes_out":551360,"cpu_s":2.0})",
    R"({"run_id":"pycbc-inference-run0001","chain_id":"pycbc_inference",)"
    R"("task_id":"stage_out_local_condorpool_0_0","instance_id":"stage_out_local_condorpool_0_0",)"
    R"("start":1711580451.0,"end":1711580461.0,"status":"succeeded","bytes_out":346650884,)"
    R"("cpu_s":1.4})",
};

// A record with every field set.
HistoryRecord FullRecord() {
  HistoryRecord r;
  r.seq = 7;
  r.run_id = "run-1";
  r.chain_id = "etl";
  r.task_id = "extract";
  r.instance_id = "extract_ID01";
  r.chain_version = 3;
  r.task_version = 2;
  r.attempt = 2;
  r.start_unix_ms = 1711562944123;
  r.end_unix_ms = 1711562949001;
  r.status = "failed";
  r.cause = "signal 9 (SIGKILL)";
  r.cold = false;
  r.startup_ms = 12.5;
  r.cpu_s = 0.25;
  r.max_rss_kb = 20480;
  r.bytes_in = 1000;
  r.bytes_out = 2000;
  r.bytes_staged = 3000;
  return r;
}

HistoryRecord Record(const std::string& run, const std::string& chain, const std::string& task,
                     int64_t start_ms) {
  HistoryRecord r;
  r.run_id = run;
  r.chain_id = chain;
  r.task_id = task;
  r.start_unix_ms = start_ms;
  r.end_unix_ms = start_ms + 10;
  r.status = "succeeded";
  return r;
}

// The error of FromJsonlV1 on `line` ("<accepted>" if none).
std::string JsonlError(const std::string& line) {
  HistoryRecord r;
  std::string err;
  return FromJsonlV1(json::parse(line), &r, &err) ? "<accepted>" : err;
}

TEST(HistoryJson, ApiFormRoundTrips) {
  const HistoryRecord r = FullRecord();
  json j = HistoryRecordToJson(r);
  EXPECT_EQ(j["seq"], 7);
  EXPECT_EQ(j["start_unix_ms"], 1711562944123);
  EXPECT_EQ(j["cold"], false);
  HistoryRecord back;
  std::string err;
  ASSERT_TRUE(HistoryRecordFromJson(j, &back, &err)) << err;
  EXPECT_EQ(back, r);
}

TEST(HistoryJson, ApiFormLeavesOutUnsetFields) {
  HistoryRecord r = Record("run-1", "etl", "extract", 5000);
  json j = HistoryRecordToJson(r);
  EXPECT_EQ(j, json::parse(R"({"seq":0,"run_id":"run-1","chain_id":"etl","task_id":"extract",
      "chain_version":0,"task_version":0,"attempt":1,"start_unix_ms":5000,"end_unix_ms":5010,
      "status":"succeeded","cause":""})"));
  HistoryRecord back;
  std::string err;
  ASSERT_TRUE(HistoryRecordFromJson(j, &back, &err)) << err;
  EXPECT_EQ(back, r);
}

TEST(HistoryJson, ApiFormErrors) {
  HistoryRecord r;
  std::string err;
  json j = HistoryRecordToJson(FullRecord());
  j.erase("status");
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "missing required field \"status\"");
  j = HistoryRecordToJson(FullRecord());
  j["status"] = "done";
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "\"status\" must be \"succeeded\", \"failed\" or \"cancelled\"");
  j = HistoryRecordToJson(FullRecord());
  j["attempt"] = 0;
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "field \"attempt\" must be an integer of at least 1");
  j = HistoryRecordToJson(FullRecord());
  j["end_unix_ms"] = 1;
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "\"end_unix_ms\" (1) is before \"start_unix_ms\" (1711562944123)");
  j = HistoryRecordToJson(FullRecord());
  j["task_id"] = std::string("a\0b", 3);
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "\"task_id\" contains a NUL character");
}

TEST(HistoryJsonl, RealTraceLinesRoundTrip) {
  for (const char* line : kFlowBenchLines) {
    json j = json::parse(line);
    HistoryRecord r;
    std::string err;
    ASSERT_TRUE(FromJsonlV1(j, &r, &err)) << err;
    EXPECT_EQ(r.seq, 0u);
    EXPECT_EQ(r.attempt, 1);
    EXPECT_EQ(r.chain_version, 0);
    EXPECT_FALSE(r.cold.has_value());
    EXPECT_EQ(ToJsonlV1(r), j) << line;
    EXPECT_EQ(ToJsonlV1(r).dump(), j.dump());
  }
  HistoryRecord r;
  std::string err;
  ASSERT_TRUE(FromJsonlV1(json::parse(kFlowBenchLines[1]), &r, &err)) << err;
  EXPECT_EQ(r.run_id, "somospie-run0001");
  EXPECT_EQ(r.chain_id, "somospie");
  EXPECT_EQ(r.task_id, "get_sm");
  EXPECT_EQ(r.instance_id, "get_sm_ID0000015");
  EXPECT_EQ(r.start_unix_ms, 1711562978000);
  EXPECT_EQ(r.end_unix_ms, 1711563014000);
  EXPECT_EQ(r.status, "succeeded");
  EXPECT_EQ(r.bytes_in, 440090843u);
  EXPECT_EQ(r.bytes_out, 551360u);
  EXPECT_EQ(r.cpu_s, 2.0);
  EXPECT_FALSE(r.bytes_staged.has_value());
}

TEST(HistoryJsonl, ChainctlRecordRoundTripsWithExtras) {
  HistoryRecord r = FullRecord();
  r.status = "cancelled";
  r.cause = "cancelled";
  json j = ToJsonlV1(r);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["cancelled"], true);
  EXPECT_EQ(j["start"], 1711562944.123);
  EXPECT_EQ(j["end"], 1711562949.001);
  EXPECT_NE(j.dump().find("\"start\":1711562944.123,"), std::string::npos) << j.dump();
  EXPECT_FALSE(j.contains("seq"));
  HistoryRecord back;
  std::string err;
  ASSERT_TRUE(FromJsonlV1(json::parse(j.dump()), &back, &err)) << err;
  r.seq = 0;
  EXPECT_EQ(back, r);
}

TEST(HistoryJsonl, MinimalRecordHasOnlyV1Fields) {
  HistoryRecord r = Record("run-1", "etl", "extract", 1500);
  r.status = "failed";
  EXPECT_EQ(ToJsonlV1(r), json::parse(R"({"run_id":"run-1","chain_id":"etl","task_id":"extract",
      "start":1.5,"end":1.51,"status":"failed"})"));
}

TEST(HistoryJsonl, Errors) {
  const std::string ids = R"("run_id":"r","chain_id":"c","task_id":"t")";
  EXPECT_EQ(JsonlError(R"({"chain_id":"c","task_id":"t","start":1,"end":2,"status":"failed"})"),
            "missing required field \"run_id\"");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":5,"end":4.5,"status":"failed"})"),
            "\"end\" (4.5) is before \"start\" (5)");
  EXPECT_EQ(JsonlError(R"({"run_id":7,"chain_id":"c","task_id":"t","start":1,"end":2})"),
            "field \"run_id\" must be a string");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":"1","end":2,"status":"failed"})"),
            "field \"start\" must be a number of seconds since the Unix epoch");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":-1,"end":2,"status":"failed"})"),
            "field \"start\" must be a number of seconds since the Unix epoch");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2})"), "missing required field \"status\"");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"cancelled"})"),
            "field \"status\" must be \"succeeded\" or \"failed\"");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","cold":1})"),
            "field \"cold\" must be true or false");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","bytes_in":-3})"),
            "field \"bytes_in\" must be a non-negative integer");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","bytes_out":1.5})"),
            "field \"bytes_out\" must be a non-negative integer");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","cpu_s":"2"})"),
            "field \"cpu_s\" must be a non-negative number");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","instance_id":3})"),
            "field \"instance_id\" must be a string");
  EXPECT_EQ(
      JsonlError(
          R"({"run_id":"","chain_id":"c","task_id":"t","start":1,"end":2,"status":"failed"})"),
      "\"run_id\" is empty");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"succeeded","cancelled":true})"),
            "a cancelled record must have status \"failed\"");
  EXPECT_EQ(JsonlError("[1]"), "a history record must be a JSON object");
  EXPECT_EQ(JsonlError("{" + ids + R"(,"start":1,"end":2,"status":"failed","unknown":[]})"),
            "<accepted>");
}

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
      records.push_back(Record(run, chain, task, 1000 * i));
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
  EXPECT_EQ(Append({Record("r", "c", "a", 1), Record("r", "c", "b", 2)}), (SeqList{1, 2}));
  EXPECT_EQ(Append({Record("r", "c", "c", 3)}), SeqList{3});
  Reopen();
  EXPECT_EQ(Count(), 3u);
  EXPECT_EQ(Append({Record("r", "c", "d", 4)}), SeqList{4});
  std::vector<HistoryRecord> all = Find({});
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].task_id, "c");
  EXPECT_EQ(all[2].seq, 3u);
  EXPECT_EQ(all[2], [] {
    HistoryRecord r = Record("r", "c", "c", 3);
    r.seq = 3;
    return r;
  }());
}

TEST_F(HistoryTest, StoresEveryField) {
  HistoryRecord r = FullRecord();
  Append({r});
  std::vector<HistoryRecord> all = Find({});
  ASSERT_EQ(all.size(), 1u);
  r.seq = 1;
  EXPECT_EQ(all[0], r);
}

TEST_F(HistoryTest, AbortedAppendLeavesSeqUnchanged) {
  Append({Record("r", "c", "a", 1)});
  std::string err;
  std::vector<HistoryRecord> records = {Record("r", "c", "b", 2), Record("r", "c", "c", 3)};
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
  EXPECT_EQ(Append({Record("r", "c", "d", 4)}), SeqList{2});
  EXPECT_EQ(Seqs({.task_id = "b"}), SeqList{});
}

// Store::Write runs the callback again after growing the map: seqs come from the transaction.
TEST_F(HistoryTest, SeqsSurviveARetriedTransaction) {
  Reopen(kDefaultHistoryRetention, 64 << 10);
  Append({Record("r", "c", "first", 1)});
  std::vector<HistoryRecord> records;
  for (int i = 0; i < 2000; ++i) records.push_back(Record("r", "c", "t" + std::to_string(i), i));
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
  EXPECT_EQ(Append({Record("r", "c", "last", 1)}), SeqList{2002});
}

TEST_F(HistoryTest, RejectsInvalidRecordsAndWritesNothing) {
  HistoryRecord bad = Record("r", "c", "", 1);
  std::string err;
  EXPECT_FALSE(history_->AppendNow({Record("r", "c", "a", 1), bad}, &err));
  EXPECT_EQ(err, "history record 2 of 2: \"task_id\" is empty");
  bad = Record("r", "c", "t", 1);
  bad.status = "skipped";
  EXPECT_FALSE(history_->AppendNow({bad}, &err));
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
    HistoryRecord r = Record("r2", "etl", "extract", 5000);
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
      records.push_back(Record("run-" + std::to_string(n % 3), "chain-" + std::to_string(n % 2),
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
  for (int i = 0; i < 12; ++i) big.push_back(Record("big", "c", "t", 100 + i));
  Append(std::move(big));
  EXPECT_EQ(Count(), 10u);
  EXPECT_EQ(Seqs({}).front(), 28u);
  EXPECT_EQ(Seqs({.run_id = "big"}).size(), 10u);
  EXPECT_EQ(KeyCount(), 1 + 10 * 4u);
  // Reopening with a lower limit drops more on the next append.
  Reopen(/*retention=*/3);
  EXPECT_EQ(Append({Record("r", "c", "t", 1)}), SeqList{38});
  EXPECT_EQ(Seqs({}), (SeqList{36, 37, 38}));
  EXPECT_EQ(KeyCount(), 1 + 3 * 4u);
}

TEST_F(HistoryTest, RunQueryReadsOnlyThatRunsRecords) {
  std::vector<HistoryRecord> records;
  for (int i = 0; i < 20000; ++i) {
    records.push_back(Record("other-" + std::to_string(i % 50), "c", "t", i));
    if (i % 4000 == 0) records.push_back(Record("wanted", "c", "t", i));
  }
  ASSERT_TRUE([&] {
    std::string err;
    bool ok = history_->AppendNow(std::move(records), &err);
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
