#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cli/cmd_trace.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

TraceAttempt Span(const std::string& task, int64_t ready, int64_t end) {
  TraceAttempt a;
  a.task_id = task;
  a.ready_ms = a.start_ms = ready;
  a.end_ms = end;
  return a;
}

TEST(Trace, SlotsAreTheLowestFree) {
  std::vector<TraceAttempt> attempts = {
      Span("a", 0, 100),    // slot 0
      Span("b", 10, 50),    // slot 1
      Span("c", 20, 200),   // slot 2
      Span("d", 50, 120),   // slot 1 again: b ended at 50
      Span("e", 100, 130),  // slot 0: a ended at 100 (lowest free, not 1)
      Span("f", 110, 140),  // slot 3: 0, 1 and 2 busy
  };
  EXPECT_EQ(AssignSlots(&attempts), 4);
  std::vector<int> slots;
  for (const TraceAttempt& a : attempts) slots.push_back(a.slot);
  EXPECT_EQ(slots, (std::vector<int>{0, 1, 2, 1, 0, 3}));
}

TEST(Trace, SlotsDoNotDependOnTheInputOrder) {
  std::vector<TraceAttempt> attempts = {Span("late", 60, 70), Span("early", 0, 50),
                                        Span("mid", 10, 65)};
  EXPECT_EQ(AssignSlots(&attempts), 2);
  EXPECT_EQ(attempts[1].slot, 0);  // early
  EXPECT_EQ(attempts[2].slot, 1);  // mid
  EXPECT_EQ(attempts[0].slot, 0);  // late: early's slot is free from 50
}

TEST(Trace, ASerialChainStaysOnOneSlot) {
  std::vector<TraceAttempt> attempts = {Span("a", 0, 10), Span("b", 10, 20), Span("c", 20, 30)};
  EXPECT_EQ(AssignSlots(&attempts), 1);
}

// a and b are roots; c depends on both (all_success); d on both (one_success); b retried once.
const json kDefinition = json::parse(R"({"tasks": [
  {"task_id": "a"}, {"task_id": "b"},
  {"task_id": "c", "dependencies": ["a", "b"]},
  {"task_id": "d", "dependencies": ["a", "b"], "trigger_rule": "one_success"}]})");

const json kEvents = json::parse(R"([
  {"type": "run_started", "time_unix_ms": 1000},
  {"type": "task_started", "task_id": "a", "attempt": 1, "time_unix_ms": 1001},
  {"type": "task_started", "task_id": "b", "attempt": 1, "time_unix_ms": 1002},
  {"type": "task_retrying", "task_id": "b", "attempt": 1, "backoff_ms": 100,
   "time_unix_ms": 1050},
  {"type": "task_finished", "task_id": "a", "state": "succeeded", "time_unix_ms": 1200},
  {"type": "task_started", "task_id": "b", "attempt": 2, "time_unix_ms": 1150},
  {"type": "task_finished", "task_id": "b", "state": "succeeded", "time_unix_ms": 1300},
  {"type": "task_started", "task_id": "d", "attempt": 1, "time_unix_ms": 1210},
  {"type": "task_started", "task_id": "c", "attempt": 1, "time_unix_ms": 1310}])");

const json kRecords = json::parse(R"([
  {"task_id": "b", "attempt": 1, "start_unix_ms": 1002, "end_unix_ms": 1049, "status": "failed",
   "cause": "exit 1", "cold": true, "startup_ms": 20.5},
  {"task_id": "b", "attempt": 2, "start_unix_ms": 1155, "end_unix_ms": 1300,
   "status": "succeeded", "cold": false, "startup_ms": 1},
  {"task_id": "a", "attempt": 1, "start_unix_ms": 1001, "end_unix_ms": 1200,
   "status": "succeeded"},
  {"task_id": "d", "attempt": 1, "start_unix_ms": 1210, "end_unix_ms": 1400,
   "status": "succeeded"},
  {"task_id": "c", "attempt": 1, "start_unix_ms": 1310, "end_unix_ms": 1500,
   "status": "succeeded"}])");

TEST(Trace, ReadyTimesFromTheEvents) {
  std::vector<TraceAttempt> a = TraceAttempts(kRecords, kEvents, kDefinition);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].ready_ms, 1000);  // b: a root, ready at the run's start
  EXPECT_EQ(a[1].ready_ms, 1150);  // b again: retrying at 1050 + 100 ms backoff
  EXPECT_EQ(a[2].ready_ms, 1000);  // a
  EXPECT_EQ(a[3].ready_ms, 1200);  // d: one_success, a's end
  EXPECT_EQ(a[4].ready_ms, 1300);  // c: all_success, b's end
  for (const TraceAttempt& t : a) EXPECT_TRUE(t.ready_known) << t.task_id;
  EXPECT_EQ(a[0].cold, true);
  EXPECT_EQ(a[0].startup_ms, 20.5);
  EXPECT_EQ(a[0].cause, "exit 1");
  EXPECT_FALSE(a[2].cold.has_value());
}

TEST(Trace, WithoutTheChainReadyIsTheStart) {
  std::vector<TraceAttempt> a = TraceAttempts(kRecords, kEvents, nullptr);
  EXPECT_FALSE(a[4].ready_known);
  EXPECT_EQ(a[4].ready_ms, 1310);
  EXPECT_EQ(a[1].ready_ms, 1150);  // a retry's due time needs no chain
}

TEST(Trace, ResumedRunIsReadyFromTheResume) {
  json events = json::parse(R"([
    {"type": "run_started", "time_unix_ms": 1000},
    {"type": "task_finished", "task_id": "a", "state": "succeeded", "time_unix_ms": 1100},
    {"type": "run_resumed", "time_unix_ms": 5000}])");
  json records = json::parse(
      R"([{"task_id": "c", "attempt": 1, "start_unix_ms": 5004, "end_unix_ms": 5010}])");
  EXPECT_EQ(TraceAttempts(records, events, kDefinition)[0].ready_ms, 5000);
}

TEST(Trace, WaitsTakeQueueLanesNotSlots) {
  // --jobs 1: b and c were ready with a but waited for its slot.
  std::vector<TraceAttempt> attempts = {Span("a", 0, 10), Span("b", 10, 20), Span("c", 20, 30)};
  attempts[1].ready_ms = attempts[2].ready_ms = 0;
  EXPECT_EQ(AssignSlots(&attempts), 1);
  EXPECT_EQ(attempts[0].queue_lane, -1);  // no wait
  EXPECT_EQ(attempts[1].queue_lane, 0);
  EXPECT_EQ(attempts[2].queue_lane, 1);  // waited alongside b
}

TEST(Trace, EventsOfEachAttemptOnItsSlotAndItsWaitOnAQueueLane) {
  std::vector<TraceAttempt> attempts = TraceAttempts(kRecords, kEvents, kDefinition);
  EXPECT_EQ(AssignSlots(&attempts), 2);  // a, b; b again; d on a's slot; c on b's
  json run = {
      {"run_id", "run-4"}, {"chain_id", "ci"}, {"status", "succeeded"}, {"created_unix_ms", 999}};
  json trace = TraceJson(run, attempts);
  EXPECT_EQ(trace["displayTimeUnit"], "ms");
  std::vector<json> whole, meta, queued;
  std::map<std::string, std::vector<json>> parts;  // "task/attempt" -> what follows it
  std::string current;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M") {
      meta.push_back(e);
    } else if (e["cat"] == "attempt") {
      whole.push_back(e);
      current = e["name"].get<std::string>() + "/" + e["args"]["attempt"].dump();
    } else if (e["cat"] == "queue") {
      queued.push_back(e);
    } else {
      parts[current].push_back({{"name", e["name"]},
                                {"ts", e["ts"]},
                                {"dur", e["dur"]},
                                {"pid", e["pid"]},
                                {"tid", e["tid"]}});
    }
  }
  ASSERT_EQ(whole.size(), 5u);   // one per attempt
  ASSERT_EQ(queued.size(), 5u);  // each waited: from its ready time to its start
  // Both processes, 2 slots and 2 queue lanes, each named and ordered.
  EXPECT_EQ(meta.size(), 2 * (2u + 2 * 2));
  EXPECT_EQ(meta[2], json::parse(R"({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1,
                                     "args": {"name": "slot 1"}})"));
  // b's second attempt: ready 1150, started 1155, 1 ms warm start, work to 1300; on slot 2.
  const json& b2 = whole[1];
  EXPECT_EQ(b2["name"], "b");
  EXPECT_EQ(b2["pid"], 1);
  EXPECT_EQ(b2["tid"], 2);
  EXPECT_EQ(b2["ts"], (1155 - 999) * 1000);
  EXPECT_EQ(b2["dur"], 145 * 1000);
  EXPECT_EQ(b2["args"]["attempt"], 2);
  EXPECT_EQ(b2["args"]["start"], "warm");
  EXPECT_EQ(b2["args"]["queue_ms"], 5);
  EXPECT_EQ(json(parts["b/2"]), json::parse(R"([
    {"name": "warm start", "ts": 156000, "dur": 1000, "pid": 1, "tid": 2},
    {"name": "work", "ts": 157000, "dur": 144000, "pid": 1, "tid": 2}])"));
  EXPECT_EQ(queued[1], json::parse(R"({"name": "b queued", "cat": "queue", "ph": "X",
    "ts": 151000, "dur": 5000, "pid": 2, "tid": 1, "args": {"attempt": 2}})"));
  EXPECT_EQ(whole[0]["args"]["start"], "cold");
  EXPECT_EQ(whole[0]["args"]["state"], "failed");
  EXPECT_EQ(whole[2]["args"]["start"], "unknown");
  EXPECT_EQ(json(parts["a/1"]).size(), 1u);  // no start-up known: work only
}

}  // namespace
}  // namespace chainctl::cli
