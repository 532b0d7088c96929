#include "cli/progress.h"

#include <gtest/gtest.h>

#include <sstream>

namespace chainctl::cli {
namespace {

using nlohmann::json;

// What Progress printed for `events` in `mode` (no colour).
std::string Show(ProgressMode mode, const std::vector<json>& events) {
  std::ostringstream err;
  Progress progress(err, mode, false);
  for (const json& event : events) progress.OnEvent(event);
  return err.str();
}

std::vector<json> CachedRun() {
  return {
      {{"type", "run_started"}, {"run_id", "run-1"}, {"chain_id", "c"}, {"tasks", 3}},
      {{"type", "task_finished"}, {"task_id", "build"}, {"state", "cached"}},
      {{"type", "task_started"}, {"task_id", "test"}, {"attempt", 1}},
      {{"type", "task_finished"},
       {"task_id", "test"},
       {"state", "succeeded"},
       {"duration_ms", 1500}},
      {{"type", "task_finished"}, {"task_id", "lint"}, {"state", "cached"}},
      {{"type", "run_finished"},
       {"run_id", "run-1"},
       {"status", "succeeded"},
       {"duration_ms", 1600}},
  };
}

TEST(Progress, ACachedTaskCountsAsDone) {
  std::string text = Show(ProgressMode::kPlain, CachedRun());
  EXPECT_NE(text.find("[1/3] cached build\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[1/3] start test\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[2/3] ok test 1.50s\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[3/3] cached lint\n"), std::string::npos) << text;
  EXPECT_NE(text.find("run-1 succeeded in 1.60s (3 tasks: 2 cached, 1 succeeded)\n"),
            std::string::npos)
      << text;
}

TEST(Progress, TheTerminalLineShowsCachedTasksAbove) {
  std::string text = Show(ProgressMode::kTty, CachedRun());
  EXPECT_NE(text.find("[1/3] cached build\n"), std::string::npos) << text;
  EXPECT_NE(text.find("(3 tasks: 2 cached, 1 succeeded)"), std::string::npos) << text;
}

TEST(Progress, CountStatesOrdersCachedFirst) {
  EXPECT_EQ(CountStates({{"a", "succeeded"}}), "1 task: 1 succeeded");
  EXPECT_EQ(CountStates({{"a", "succeeded"},
                         {"b", "cached"},
                         {"c", "weird"},
                         {"d", "upstream_failed"},
                         {"e", "failed"},
                         {"f", "cached"}}),
            "6 tasks: 2 cached, 1 succeeded, 1 failed, 1 upstream_failed, 1 weird");
  EXPECT_EQ(CountStates({}), "0 tasks");
}

TEST(Progress, ARetriedTaskCountsOnce) {
  std::string text = Show(ProgressMode::kQuiet, CachedRun());  // quiet: nothing at all
  EXPECT_EQ(text, "");
  text = Show(ProgressMode::kPlain,
              {{{"type", "run_started"}, {"run_id", "r"}, {"tasks", 1}},
               {{"type", "task_finished"}, {"task_id", "a"}, {"state", "failed"}},
               {{"type", "run_resumed"}, {"run_id", "r"}, {"tasks", json::array({"a"})}},
               {{"type", "task_finished"}, {"task_id", "a"}, {"state", "succeeded"}},
               {{"type", "run_finished"}, {"run_id", "r"}, {"status", "succeeded"}}});
  EXPECT_NE(text.find("(1 task: 1 succeeded)"), std::string::npos) << text;
}

TEST(Explain, SaysWhyEachTaskRanOrNot) {
  json sources = {{"task_id", "t"}, {"sources", json::array({"src/**"})}};
  EXPECT_EQ(ExplainTask({{"task_id", "t"}, {"state", "cached"}, {"attempts", 0}}, sources),
            "t: cached");
  EXPECT_EQ(
      ExplainTask({{"task_id", "t"},
                   {"state", "succeeded"},
                   {"attempts", 1},
                   {"cache", {{"hit", false}, {"key", "ab"}, {"reason", "src/a.py changed"}}}},
                  sources),
      "t: ran: src/a.py changed");
  EXPECT_EQ(
      ExplainTask(
          {{"task_id", "t"}, {"state", "failed"}, {"attempts", 2}, {"cache", {{"hit", false}}}},
          sources),
      "t: ran: no entry for this key");
  EXPECT_EQ(
      ExplainTask({{"task_id", "t"}, {"state", "succeeded"}, {"attempts", 1}}, {{"task_id", "t"}}),
      "t: not cached: no sources declared");
  EXPECT_EQ(ExplainTask({{"task_id", "t"}, {"state", "succeeded"}, {"attempts", 1}},
                        {{"task_id", "t"}, {"sources", json::array({"a"})}, {"cache", "off"}}),
            "t: not cached: cache: off");
  EXPECT_EQ(ExplainTask({{"task_id", "t"}, {"state", "succeeded"}, {"attempts", 1}},
                        {{"task_id", "t"}, {"cache", false}}),
            "t: not cached: cache: off");
  EXPECT_EQ(ExplainTask({{"task_id", "t"}, {"state", "upstream_failed"}, {"attempts", 0}}, sources),
            "t: not run (upstream_failed)");
  EXPECT_EQ(ExplainTask({{"task_id", "t"}, {"state", "succeeded"}, {"attempts", 1}}, json()),
            "t: not cached");
}

}  // namespace
}  // namespace chainctl::cli
