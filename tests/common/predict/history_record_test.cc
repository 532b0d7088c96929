#include "common/predict/history_record.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace chainctl {
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

// The error of FromJsonlV1 on `line` ("<accepted>" if none).
std::string JsonlError(const std::string& line) {
  HistoryRecord r;
  std::string err;
  return FromJsonlV1(json::parse(line), &r, &err) ? "<accepted>" : err;
}

TEST(HistoryJson, ApiFormRoundTrips) {
  const HistoryRecord r = testing::FullHistoryRecord();
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
  HistoryRecord r = testing::SucceededRecord("run-1", "etl", "extract", 5000);
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
  json j = HistoryRecordToJson(testing::FullHistoryRecord());
  j.erase("status");
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "missing required field \"status\"");
  j = HistoryRecordToJson(testing::FullHistoryRecord());
  j["status"] = "done";
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "\"status\" must be \"succeeded\", \"failed\" or \"cancelled\"");
  j = HistoryRecordToJson(testing::FullHistoryRecord());
  j["attempt"] = 0;
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "field \"attempt\" must be an integer of at least 1");
  j = HistoryRecordToJson(testing::FullHistoryRecord());
  j["end_unix_ms"] = 1;
  EXPECT_FALSE(HistoryRecordFromJson(j, &r, &err));
  EXPECT_EQ(err, "\"end_unix_ms\" (1) is before \"start_unix_ms\" (1711562944123)");
  j = HistoryRecordToJson(testing::FullHistoryRecord());
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
  HistoryRecord r = testing::FullHistoryRecord();
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

// A task restored from the task cache: "cached" in both forms, read back; unset, left out.
TEST(HistoryJson, ACachedRecordRoundTripsInBothForms) {
  HistoryRecord r = testing::FullHistoryRecord();
  r.status = "succeeded";
  r.cause.clear();
  r.cached = true;
  EXPECT_EQ(HistoryRecordToJson(r)["cached"], true);
  EXPECT_EQ(ToJsonlV1(r)["cached"], true);
  HistoryRecord api, jsonl;
  std::string err;
  ASSERT_TRUE(HistoryRecordFromJson(HistoryRecordToJson(r), &api, &err)) << err;
  ASSERT_TRUE(FromJsonlV1(ToJsonlV1(r), &jsonl, &err)) << err;
  EXPECT_EQ(api.cached, std::optional<bool>(true));
  EXPECT_EQ(jsonl.cached, std::optional<bool>(true));
  r.cached.reset();
  EXPECT_FALSE(HistoryRecordToJson(r).contains("cached"));
  EXPECT_FALSE(ToJsonlV1(r).contains("cached"));
  json bad = ToJsonlV1(r);
  bad["cached"] = "yes";
  EXPECT_FALSE(FromJsonlV1(bad, &jsonl, &err));
  EXPECT_NE(err.find("cached"), std::string::npos) << err;
}

TEST(HistoryJsonl, MinimalRecordHasOnlyV1Fields) {
  HistoryRecord r = testing::SucceededRecord("run-1", "etl", "extract", 1500);
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

}  // namespace
}  // namespace chainctl
