// RunParams (orchestrator.h): the caller's environment of a run, the chain's env_file, where
// tasks run (the chain's source_dir and working_dir), and the selection of tasks.
#include <filesystem>
#include <fstream>

#include "tests/daemon/run/orchestrator_fixture.h"

namespace chainctl::daemon::orchestrator_test {
namespace {

class RunParamsTest : public OrchestratorTest {
 protected:
  // Triggers `chain_id` with `params` and runs the loop until all settled: the run record, or
  // {"refused": status, "code", "message"}.
  json RunWith(const std::string& chain_id, Orchestrator::RunParams params) {
    orchestrator_->Trigger(chain_id, 0, json::object(), Accept(), std::move(params));
    return Outcome();
  }

  // Resume of `run_id` with `params`, as RunWith.
  json ResumeWith(const std::string& run_id, Orchestrator::RunParams params) {
    orchestrator_->Resume(run_id, Accept(), std::move(params));
    return Outcome();
  }

  Orchestrator::Accepted Accept() {
    error_.reset();
    return [this](std::optional<RunError> e, const std::string& id) {
      error_ = e;
      if (!id.empty()) id_ = id;
    };
  }

  json Outcome() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (error_) {
      return {{"refused", error_->status}, {"code", error_->code}, {"message", error_->message}};
    }
    std::optional<json> record;
    std::string err;
    EXPECT_TRUE(orchestrator_->GetRun(id_, &record, &err)) << err;
    return record.value_or(json());
  }

  // A project folder with a sub folder and an env file; the chain `proj` in it.
  void ApplyProject() {
    project_ = tmp_.path() + "/proj";
    std::filesystem::create_directories(project_ + "/sub");
    std::ofstream(project_ + "/ci.env")
        << "# from the chain's env_file\nFROM_FILE=file\nMODE=first\nMODE=file\n";
    Apply("chain_id: proj\nsource_dir: " + project_ + "\nenv_file: ci.env\ntasks:\n" +
          "  - {task_id: top, executable_code_location: /bin/cat, env: {MODE: task}}\n"
          "  - {task_id: below, executable_code_location: /bin/cat, working_dir: sub,"
          " dependencies: [top]}\n");
  }

  static bool Has(const TaskLaunch& launch, const std::string& var) {
    return std::find(launch.env.begin(), launch.env.end(), var) != launch.env.end();
  }

  std::string project_;
  std::optional<RunError> error_;
  std::string id_;
};

TEST_F(RunParamsTest, TasksRunInTheProjectWithTheCallersEnvironmentOverTheRest) {
  ApplyProject();
  json run = RunWith("proj", {.env = {{"SECRET", "hunter2-xyzzy"}, {"FROM_FILE", "caller"}}});
  ASSERT_EQ(run.value("status", ""), "succeeded") << run.dump();
  ASSERT_EQ(runner_->launches.size(), 2u);
  const TaskLaunch& top = runner_->launches[0];
  const TaskLaunch& below = runner_->launches[1];
  EXPECT_EQ(top.cwd, project_);
  EXPECT_EQ(below.cwd, project_ + "/sub");
  EXPECT_TRUE(top.workdir.ends_with("/top/work")) << "CHAIN_WORKDIR stays the run's scratch";
  EXPECT_TRUE(Has(top, "CHAIN_SOURCE_DIR=" + project_));
  EXPECT_TRUE(Has(below, "PWD=" + project_ + "/sub"));
  EXPECT_TRUE(Has(top, "SECRET=hunter2-xyzzy"));
  EXPECT_TRUE(Has(top, "FROM_FILE=caller")) << "the caller wins over the env_file";
  EXPECT_TRUE(Has(top, "MODE=task")) << "a task's env wins over the env_file";
  EXPECT_TRUE(Has(below, "MODE=file")) << "a later line of the env_file wins";
  EXPECT_EQ(run["env"], json::array({"FROM_FILE", "SECRET"})) << "the names are kept";
}

TEST_F(RunParamsTest, TheValuesAreNeverStored) {
  ApplyProject();
  json run = RunWith("proj", {.env = {{"SECRET", "hunter2-xyzzy"}}});
  ASSERT_EQ(run.value("status", ""), "succeeded") << run.dump();
  orchestrator_.reset();  // everything written
  uv_run(&loop_, UV_RUN_DEFAULT);
  store_.reset();
  std::string bytes = testing::ReadFileOrDie(tmp_.path() + "/store/data.mdb");
  EXPECT_EQ(bytes.find("hunter2-xyzzy"), std::string::npos);
  EXPECT_NE(bytes.find("SECRET"), std::string::npos) << "the name is stored";
}

TEST_F(RunParamsTest, ResumeAsksForTheEnvironmentAgain) {
  ApplyProject();
  bool fail = true;
  runner_->behave = [&](const TaskLaunch& launch) {
    if (launch.task_id == "below" && fail) return ExitedWith(1);
    return Succeeded(launch.stdin_data);
  };
  json run = RunWith("proj", {.env = {{"SECRET", "one"}}});
  ASSERT_EQ(run.value("status", ""), "failed") << run.dump();
  std::string id = run["run_id"];
  json refused = ResumeWith(id, {});
  EXPECT_EQ(refused.value("refused", 0), 422);
  EXPECT_EQ(refused.value("code", ""), "env_required");
  EXPECT_NE(refused.value("message", "").find("SECRET"), std::string::npos) << refused.dump();
  fail = false;
  runner_->launches.clear();
  json resumed = ResumeWith(id, {.env = {{"SECRET", "two"}}});
  ASSERT_EQ(resumed.value("status", ""), "succeeded") << resumed.dump();
  ASSERT_EQ(runner_->launches.size(), 1u);
  EXPECT_TRUE(Has(runner_->launches[0], "SECRET=two"));
}

TEST_F(RunParamsTest, BadNamesAndAMissingEnvFileAreRefused) {
  ApplyProject();
  for (const char* name : {"CHAIN_RUN_ID", "1X", "A-B", ""}) {
    json refused = RunWith("proj", {.env = {{name, "v"}}});
    EXPECT_EQ(refused.value("refused", 0), 422) << name;
    EXPECT_EQ(refused.value("code", ""), "invalid_env") << name;
  }
  std::ofstream(project_ + "/ci.env") << "CHAIN_WORKDIR=/elsewhere\n";
  json reserved = RunWith("proj", {});
  EXPECT_EQ(reserved.value("code", ""), "env_file");
  EXPECT_NE(reserved.value("message", "").find("sets CHAIN_WORKDIR"), std::string::npos)
      << reserved.dump();
  std::filesystem::remove(project_ + "/ci.env");
  json refused = RunWith("proj", {});
  EXPECT_EQ(refused.value("refused", 0), 422);
  EXPECT_EQ(refused.value("code", ""), "env_file");
  EXPECT_NE(refused.value("message", "").find("ci.env"), std::string::npos) << refused.dump();
  EXPECT_TRUE(runner_->launches.empty());
}

TEST_F(RunParamsTest, ASelectionRunsItsTasksAndTheirDependenciesOnly) {
  Apply(kDiamond);
  json run = RunWith("diamond", {.tasks = {"left"}});
  ASSERT_EQ(run.value("status", ""), "succeeded") << run.dump();
  std::vector<std::string> launched;
  for (const TaskLaunch& l : runner_->launches) launched.push_back(l.task_id);
  EXPECT_EQ(launched, (std::vector<std::string>{"src", "left"}));
  EXPECT_EQ(TaskOf(run, "right")["state"], "skipped");
  EXPECT_EQ(TaskOf(run, "join")["error"], "not selected");
  EXPECT_EQ(run["selected"], json::array({"left"}));
  EXPECT_EQ(run["output"], json::object()) << "the output is the selected task's";
  std::vector<json> events = Events(run["run_id"]);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["tasks"], 2) << "progress counts the tasks that run";

  json refused = RunWith("diamond", {.tasks = {"nope"}});
  EXPECT_EQ(refused.value("refused", 0), 422);
  EXPECT_EQ(refused.value("code", ""), "unknown_task");
}

}  // namespace
}  // namespace chainctl::daemon::orchestrator_test
