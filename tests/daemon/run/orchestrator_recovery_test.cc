// The Orchestrator across restarts and on demand (orchestrator_fixture.h): runs left running
// become interrupted and their task processes are stopped, Resume runs again what did not
// succeed, and only the newest run folders are kept.
#include <filesystem>

#include "daemon/store/run_keys.h"
#include "tests/daemon/run/orchestrator_fixture.h"

namespace chainctl::daemon::orchestrator_test {
namespace {

TEST_F(OrchestratorTest, RunsSurviveAReopenAndRunningOnesBecomeInterrupted) {
  Apply(kDiamond);
  std::string run_id;
  RunToEnd("diamond", json::object(), &run_id);
  // A run left "running" by a chaind that died.
  json stale = {{"run_id", "run-7"}, {"chain_id", "diamond"}, {"status", "running"}};
  json stale_task = {{"task_id", "src"}, {"index", 0}, {"state", "running"}, {"attempts", 1}};
  std::string err;
  ASSERT_TRUE(store_->Write(
      [&](WriteTxn& txn, std::string* e) {
        return txn.Put(Db::kRuns, RunKey(7), EncodeValue(1, stale.dump()), e) &&
               txn.Put(Db::kRuns, RunTaskKey(7, "src"), EncodeValue(1, stale_task.dump()), e);
      },
      &err));
  MakeOrchestrator(2);
  std::optional<json> run;
  ASSERT_TRUE(orchestrator_->GetRun("run-7", &run, &err)) << err;
  EXPECT_EQ((*run)["status"], "interrupted");
  EXPECT_EQ(TaskOf(*run, "src")["state"], "cancelled");
  EXPECT_EQ((*run)["task_states"], (json{{"cancelled", 1}}));
  ASSERT_TRUE(orchestrator_->GetRun(run_id, &run, &err)) << err;
  EXPECT_EQ((*run)["status"], "succeeded");
  std::string next;
  RunToEnd("diamond", json::object(), &next);
  EXPECT_EQ(next, "run-8") << "numbers continue after the highest stored";
}

TEST_F(OrchestratorTest, ResumeRerunsOnlyWhatDidNotSucceedWithTheStoredOutputs) {
  Apply(kDiamond);
  bool right_fails = true;
  runner_->behave = [&](const TaskLaunch& launch) {
    if (launch.task_id == "right" && right_fails) return ExitedWith(3);
    json input = json::parse(launch.stdin_data);
    return Succeeded(
        json{{"by", launch.task_id}, {"attempt", launch.attempt}, {"in", input}}.dump());
  };
  std::string run_id;
  json run = RunToEnd("diamond", {{"x", 1}}, &run_id);
  ASSERT_EQ(run["status"], "failed");
  EXPECT_EQ(TaskOf(run, "join")["state"], "upstream_failed");
  right_fails = false;
  runner_->launches.clear();

  run = ResumeToEnd(run_id);
  EXPECT_EQ(run["status"], "succeeded");
  EXPECT_EQ(run["resumed"], 1);
  ASSERT_EQ(runner_->launches.size(), 2u) << "only right and join run again";
  EXPECT_EQ(runner_->launches[0].task_id, "right");
  EXPECT_EQ(runner_->launches[0].attempt, 2) << "attempts go on counting";
  EXPECT_EQ(runner_->launches[1].task_id, "join");
  json join_input = json::parse(runner_->launches[1].stdin_data);
  EXPECT_EQ(join_input["left"]["by"], "left") << "left's stored output is reused";
  EXPECT_EQ(join_input["left"]["in"]["by"], "src");
  EXPECT_EQ(join_input["right"]["attempt"], 2);
  EXPECT_EQ(TaskOf(run, "src")["attempts"], 1);
  EXPECT_EQ(TaskOf(run, "right")["attempts"], 2);
  EXPECT_EQ(run["output"]["by"], "join");

  std::vector<std::string> types;
  for (const json& e : Events(run_id)) types.push_back(e["type"]);
  auto resumed = std::find(types.begin(), types.end(), "run_resumed");
  ASSERT_NE(resumed, types.end());
  EXPECT_EQ(std::count(types.begin(), resumed, "run_finished"), 1);
  EXPECT_EQ(types.back(), "run_finished");
  EXPECT_EQ(Events(run_id)[static_cast<size_t>(resumed - types.begin())]["tasks"],
            (json{"right", "join"}));

  json again = ResumeToEnd(run_id);
  EXPECT_EQ(again["refused"], 409) << again;
  EXPECT_EQ(ResumeToEnd("run-99")["refused"], 404);
}

TEST_F(OrchestratorTest, ResumeGivesRetriesAfreshAndRefusesARunningRun) {
  Apply(R"(
chain_id: flaky
tasks:
  - task_id: flaky
    executable_code_location: /bin/cat
    retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}
)");
  int calls = 0;
  runner_->behave = [&](const TaskLaunch&) {
    return ++calls < 4 ? ExitedWith(1) : Succeeded("{}");
  };
  std::string run_id;
  EXPECT_EQ(RunToEnd("flaky", json::object(), &run_id)["status"], "failed");
  EXPECT_EQ(calls, 2);
  json run = ResumeToEnd(run_id);
  EXPECT_EQ(run["status"], "succeeded") << "attempts 3 and 4: two more, as retry says";
  EXPECT_EQ(TaskOf(run, "flaky")["attempts"], 4);

  runner_->hold = true;
  std::optional<RunError> refused;
  orchestrator_->Trigger(
      "flaky", 0, json::object(), [&](std::optional<RunError>, const std::string& id) {
        orchestrator_->Resume(id,
                              [&](std::optional<RunError> e, const std::string&) { refused = e; });
        orchestrator_->Cancel(id);
      });
  uv_run(&loop_, UV_RUN_DEFAULT);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 409);
  EXPECT_NE(refused->message.find("is running"), std::string::npos) << refused->message;
}

TEST_F(OrchestratorTest, ARestartStopsTheTasksOfInterruptedRunsAndTheyCanBeResumed) {
  Apply(kDiamond);
  runner_->hold = true;
  std::string run_id;
  orchestrator_->Trigger("diamond", 0, json::object(),
                         [&](std::optional<RunError>, const std::string& id) { run_id = id; });
  while (runner_->launches.empty()) uv_run(&loop_, UV_RUN_ONCE);
  writer_->Sync([](bool, const std::string&) {});
  while (writer_->busy()) uv_run(&loop_, UV_RUN_ONCE);
  std::optional<json> run;
  std::string err;
  ASSERT_TRUE(orchestrator_->GetRun(run_id, &run, &err)) << err;
  EXPECT_EQ(TaskOf(*run, "src")["process"], (json{{"fake", 1}})) << "stored while it runs";

  // chaind dies here: nothing more is stored. A new one stops src's process and ends the run.
  orchestrator_.reset();
  runner_ = std::make_unique<FakeRunner>(&loop_);
  MakeOrchestrator(2);
  EXPECT_EQ(runner_->orphans_stopped, (std::vector<json>{{{"fake", 1}}}));
  ASSERT_TRUE(orchestrator_->GetRun(run_id, &run, &err)) << err;
  EXPECT_EQ((*run)["status"], "interrupted");
  EXPECT_EQ(TaskOf(*run, "src")["state"], "cancelled");
  EXPECT_FALSE(TaskOf(*run, "src").contains("process"));
  std::vector<json> events = Events(run_id);
  EXPECT_EQ(events.back()["type"], "run_finished") << "its events end as an ended run's do";
  EXPECT_EQ(events.back()["status"], "interrupted");
  EXPECT_EQ(events.back()["seq"], events.size());

  run = ResumeToEnd(run_id);
  EXPECT_EQ((*run)["status"], "succeeded") << *run;
  EXPECT_EQ(runner_->launches.size(), 4u);
}

TEST_F(OrchestratorTest, ARunWhoseFolderWasRemovedIsNotResumed) {
  Apply(kDiamond);
  runner_->behave = [](const TaskLaunch&) { return ExitedWith(1); };
  std::string run_id;
  RunToEnd("diamond", json::object(), &run_id);
  std::filesystem::remove_all(tmp_.path() + "/runs/" + run_id);
  json refused = ResumeToEnd(run_id);
  EXPECT_EQ(refused["refused"], 409);
  EXPECT_NE(refused["message"].get<std::string>().find("keep-run-files"), std::string::npos);
}

TEST_F(OrchestratorTest, OnlyTheNewestRunFoldersAreKept) {
  Apply(kDiamond);
  MakeOrchestrator(2, 2);
  for (int i = 0; i < 4; ++i) RunToEnd("diamond", json::object());
  namespace fs = std::filesystem;
  EXPECT_FALSE(fs::exists(tmp_.path() + "/runs/run-1"));
  EXPECT_FALSE(fs::exists(tmp_.path() + "/runs/run-2"));
  EXPECT_TRUE(fs::exists(tmp_.path() + "/runs/run-3/join/attempt-1.log"));
  EXPECT_TRUE(fs::exists(tmp_.path() + "/runs/run-4"));
  std::optional<json> run;
  std::string err;
  ASSERT_TRUE(orchestrator_->GetRun("run-1", &run, &err)) << err;
  EXPECT_EQ((*run)["status"], "succeeded") << "the record stays";
  // A restart counts the folders it finds.
  MakeOrchestrator(2, 1);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_FALSE(fs::exists(tmp_.path() + "/runs/run-3"));
  EXPECT_TRUE(fs::exists(tmp_.path() + "/runs/run-4"));
}

}  // namespace
}  // namespace chainctl::daemon::orchestrator_test
