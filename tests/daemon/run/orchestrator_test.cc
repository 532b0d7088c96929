// The Orchestrator running chains (orchestrator_fixture.h): data passed between tasks, the
// environment and files of a launch, output and input schemas, retries, --jobs and the critical
// path, events, cancel and the chain's timeout.
#include <filesystem>
#include <fstream>
#include <map>

#include "tests/daemon/run/orchestrator_fixture.h"

namespace chainctl::daemon::orchestrator_test {
namespace {

TEST_F(OrchestratorTest, DiamondPassesDataAsDesigned) {
  Apply(kDiamond);
  runner_->behave = [](const TaskLaunch& launch) {
    TaskResult r;
    json input = json::parse(launch.stdin_data);
    r.output = json{{"from", launch.task_id}, {"got", input}}.dump();
    return r;
  };
  json run = RunToEnd("diamond", {{"n", 1}});
  ASSERT_EQ(run["status"], "succeeded") << run.dump(2);
  json src = {{"from", "src"}, {"got", {{"n", 1}}}};
  json left = {{"from", "left"}, {"got", src}};
  json right = {{"from", "right"}, {"got", src}};
  EXPECT_EQ(run["output"], (json{{"from", "join"}, {"got", {{"left", left}, {"right", right}}}}));
  for (const json& t : run["tasks"]) EXPECT_EQ(t["state"], "succeeded");
}

TEST_F(OrchestratorTest, InputMapShapesTheInput) {
  Apply(R"(
chain_id: mapped
tasks:
  - {task_id: a, executable_code_location: /bin/cat}
  - task_id: b
    executable_code_location: /bin/cat
    dependencies: [a]
    input_map: {rows: /a/rows, day: /trigger/date}
)");
  runner_->behave = [](const TaskLaunch& launch) {
    TaskResult r;
    r.output = launch.task_id == "a" ? R"({"rows": 7})" : launch.stdin_data;
    return r;
  };
  json run = RunToEnd("mapped", {{"date", "2026-11-24"}});
  EXPECT_EQ(run["output"], (json{{"rows", 7}, {"day", "2026-11-24"}}));
}

TEST_F(OrchestratorTest, EnvironmentAndFilesOfALaunch) {
  Apply(kDiamond);
  json run = RunToEnd("diamond", json::object());
  ASSERT_EQ(runner_->launches.size(), 4u);
  const TaskLaunch& src = runner_->launches[0];
  EXPECT_EQ(src.task_id, "src");
  ASSERT_EQ(src.argv.size(), 1u);
  EXPECT_TRUE(src.argv[0].ends_with("/cat")) << src.argv[0];
  auto has = [&](const std::string& var) {
    return std::find(src.env.begin(), src.env.end(), var) != src.env.end();
  };
  std::string dir = tmp_.path() + "/runs/" + run["run_id"].get<std::string>() + "/src";
  EXPECT_TRUE(has("CHAIN_TASK_ID=src"));
  EXPECT_TRUE(has("CHAIN_RUN_ID=" + run["run_id"].get<std::string>()));
  EXPECT_TRUE(has("CHAIN_WORKDIR=" + dir + "/work"));
  EXPECT_TRUE(has("CHAIN_OUTDIR=" + dir + "/out"));
  EXPECT_TRUE(has("CHAIN_INPUT_FILE=" + dir + "/input.json"));
  EXPECT_TRUE(has("CHAIN_OUTPUT_FILE=" + dir + "/output.json"));
  EXPECT_TRUE(has("CHAIN_ATTEMPT=1"));
  EXPECT_TRUE(has("PATH=/usr/bin:/bin"));
  EXPECT_FALSE(has("CHAIN_RUN_ID=from-a-parent")) << "the daemon's own CHAIN_* must not leak";
  EXPECT_EQ(testing::ReadFileOrDie(dir + "/input.json"), "{}");
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/work"));
  EXPECT_EQ(src.log_path, dir + "/attempt-1.log");
}

TEST_F(OrchestratorTest, FilesInOutdirReachDependents) {
  Apply(kDiamond);
  runner_->behave = [](const TaskLaunch& launch) {
    std::string outdir;
    for (const std::string& v : launch.env) {
      if (v.rfind("CHAIN_OUTDIR=", 0) == 0) outdir = v.substr(13);
    }
    if (launch.task_id == "left") std::ofstream(outdir + "/part.txt") << "left wrote this";
    TaskResult r;
    r.output = "{}";
    return r;
  };
  json run = RunToEnd("diamond", json::object());
  std::string join = tmp_.path() + "/runs/" + run["run_id"].get<std::string>() + "/join/work";
  EXPECT_EQ(testing::ReadFileOrDie(join + "/inputs/left/part.txt"), "left wrote this");
  EXPECT_FALSE(std::filesystem::exists(join + "/inputs/right")) << "right wrote no files";
}

TEST_F(OrchestratorTest, OutputSchemaViolationFailsTheTaskAndNamesTheField) {
  Apply(R"(
chain_id: checked
tasks:
  - task_id: count
    executable_code_location: /bin/cat
    output_schema: {type: object, properties: {rows: {type: integer}}, required: [rows]}
  - {task_id: after, executable_code_location: /bin/cat, dependencies: [count]}
)");
  runner_->behave = [](const TaskLaunch&) {
    TaskResult r;
    r.output = R"({"rows": "seven"})";
    return r;
  };
  json run = RunToEnd("checked", json::object());
  EXPECT_EQ(run["status"], "failed");
  json count = TaskOf(run, "count");
  EXPECT_EQ(count["state"], "failed");
  EXPECT_NE(count["error"].get<std::string>().find("/rows"), std::string::npos) << count;
  EXPECT_EQ(TaskOf(run, "after")["state"], "upstream_failed");
  EXPECT_EQ(runner_->launches.size(), 1u) << "nothing downstream runs with bad data";
  EXPECT_NE(run["error"].get<std::string>().find("task count failed"), std::string::npos);
}

TEST_F(OrchestratorTest, NonJsonOutputWithoutSchemaIsText) {
  Apply("chain_id: text\ntasks: [{task_id: echo, command: echo hi}]\n");
  runner_->behave = [](const TaskLaunch& launch) {
    EXPECT_EQ(launch.argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi", "sh"}));
    TaskResult r;
    r.output = "hi\n";
    return r;
  };
  EXPECT_EQ(RunToEnd("text", json::object())["output"], (json{{"stdout", "hi\n"}}));
}

TEST_F(OrchestratorTest, InvalidTriggerInputIsRefused) {
  Apply(R"(
chain_id: strict
tasks:
  - task_id: a
    executable_code_location: /bin/cat
    input_schema: {type: object, required: [date]}
)");
  json refused = RunToEnd("strict", {{"day", 1}});
  EXPECT_EQ(refused["refused"], 422);
  EXPECT_NE(refused["message"].get<std::string>().find("date"), std::string::npos) << refused;
  EXPECT_TRUE(runner_->launches.empty());
  EXPECT_EQ(RunToEnd("nope", json::object())["refused"], 404);
}

TEST_F(OrchestratorTest, FailedAttemptsAreRetriedAndRecorded) {
  Apply(R"(
chain_id: flaky
tasks:
  - task_id: flaky
    executable_code_location: /bin/cat
    retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms}
)");
  int calls = 0;
  runner_->behave = [&](const TaskLaunch& launch) {
    EXPECT_EQ(launch.attempt, calls + 1);
    return ++calls < 3 ? ExitedWith(1) : Succeeded("{}");
  };
  std::string run_id;
  json run = RunToEnd("flaky", json::object(), &run_id);
  EXPECT_EQ(run["status"], "succeeded");
  EXPECT_EQ(TaskOf(run, "flaky")["attempts"], 3);
  std::vector<HistoryRecord> records;
  std::string err;
  HistoryQuery query;
  query.run_id = run_id;
  ASSERT_TRUE(history_->Find(query, &records, &err)) << err;
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].status, "failed");
  EXPECT_EQ(records[0].cause, "exit 1");
  EXPECT_EQ(records[2].status, "succeeded");
  EXPECT_EQ(records[2].attempt, 3);
  int retrying = 0;
  for (const json& e : Events(run_id)) retrying += e["type"] == "task_retrying";
  EXPECT_EQ(retrying, 2);
}

TEST_F(OrchestratorTest, JobsBoundConcurrencyAcrossRuns) {
  std::string yaml = "chain_id: wide\ntasks:\n";
  for (int i = 0; i < 20; ++i) {
    yaml += "  - {task_id: t" + std::to_string(i) + ", executable_code_location: /bin/true}\n";
  }
  Apply(yaml);
  MakeOrchestrator(3);
  for (int i = 0; i < 3; ++i) {
    orchestrator_->Trigger("wide", 0, json::object(),
                           [](std::optional<RunError> e, const std::string&) { EXPECT_FALSE(e); });
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(runner_->launches.size(), 60u);
  EXPECT_EQ(runner_->max_running, 3u);
  std::vector<json> runs;
  std::string err;
  ASSERT_TRUE(orchestrator_->ListRuns("", 10, &runs, &err)) << err;
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0]["run_id"], "run-3") << "newest first";
  for (const json& r : runs) EXPECT_EQ(r["status"], "succeeded");
}

// The critical path by history: with one job, the root whose path holds the most work (by the
// durations history saw) starts first, whatever the file order; a task history has not seen
// weighs the median of the others.
TEST_F(OrchestratorTest, TheLongestPathOfRealWorkStartsFirst) {
  Apply(R"(chain_id: cp
tasks:
  - {task_id: quick, executable_code_location: /bin/true}
  - {task_id: short, executable_code_location: /bin/true}
  - {task_id: long, executable_code_location: /bin/true, dependencies: [short]}
  - {task_id: new, executable_code_location: /bin/true}
)");
  MakeOrchestrator(1);
  std::map<std::string, double> seen{{"quick", 900}, {"short", 10}, {"long", 5000}};
  orchestrator_->UseDurations([&seen](const std::string& chain, const std::string& task) {
    EXPECT_EQ(chain, "cp");
    auto it = seen.find(task);
    return it == seen.end() ? std::nullopt : std::optional<double>(it->second);
  });
  orchestrator_->Trigger("cp", 0, json::object(),
                         [](std::optional<RunError> e, const std::string&) { EXPECT_FALSE(e); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  std::vector<std::string> order;
  for (const TaskLaunch& l : runner_->launches) order.push_back(l.task_id);
  // short (10, and 5000 after it), then long (5000); then quick and new (900 each: new weighs the
  // median of what history saw), in file order.
  EXPECT_EQ(order, (std::vector<std::string>{"short", "long", "quick", "new"}));
}

TEST_F(OrchestratorTest, EventsTellTheWholeStory) {
  Apply(
      "chain_id: two\ntasks:\n  - {task_id: a, command: 'true'}\n"
      "  - {task_id: b, command: 'true', dependencies: [a]}\n");
  std::string run_id;
  RunToEnd("two", json::object(), &run_id);
  std::vector<std::string> types;
  int64_t seq = 0;
  for (const json& e : Events(run_id)) {
    EXPECT_EQ(e["seq"], ++seq);
    EXPECT_EQ(e["run_id"], run_id);
    types.push_back(e["type"].get<std::string>() +
                    (e.contains("task_id") ? ":" + e["task_id"].get<std::string>() : ""));
  }
  EXPECT_EQ(types, (std::vector<std::string>{"run_started", "task_started:a", "task_finished:a",
                                             "task_started:b", "task_finished:b", "run_finished"}));
}

TEST_F(OrchestratorTest, CancelStopsRunningAndPendingTasks) {
  Apply(kDiamond);
  runner_->hold = true;
  std::string run_id;
  orchestrator_->Trigger("diamond", 0, json::object(),
                         [&](std::optional<RunError>, const std::string& id) {
                           run_id = id;
                           EXPECT_FALSE(orchestrator_->Cancel(id));
                         });
  uv_run(&loop_, UV_RUN_DEFAULT);
  std::optional<json> run;
  std::string err;
  ASSERT_TRUE(orchestrator_->GetRun(run_id, &run, &err)) << err;
  EXPECT_EQ((*run)["status"], "cancelled");
  EXPECT_EQ(TaskOf(*run, "src")["state"], "cancelled");
  EXPECT_EQ(TaskOf(*run, "join")["state"], "cancelled");
  ASSERT_TRUE(orchestrator_->Cancel(run_id));
  EXPECT_EQ(orchestrator_->Cancel(run_id)->status, 409);
  EXPECT_EQ(orchestrator_->Cancel("run-99")->status, 404);
}

TEST_F(OrchestratorTest, TheChainTimeoutStopsTheRunAndFailsIt) {
  Apply(R"(
chain_id: slow
timeout: 20ms
tasks:
  - {task_id: a, executable_code_location: /bin/cat}
  - {task_id: b, executable_code_location: /bin/cat, dependencies: [a]}
)");
  runner_->hold = true;  // a runs until it is stopped
  json run = RunToEnd("slow", json::object());
  EXPECT_EQ(run["status"], "failed");
  EXPECT_EQ(run["error"], "the run went over its timeout of 20ms (the chain's timeout)");
  EXPECT_EQ(TaskOf(run, "a")["state"], "cancelled");
  EXPECT_EQ(TaskOf(run, "b")["state"], "cancelled");
}

}  // namespace
}  // namespace chainctl::daemon::orchestrator_test
