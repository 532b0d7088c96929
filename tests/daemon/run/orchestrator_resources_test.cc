// The Orchestrator and resources (daemon/run/resources.h; orchestrator_fixture.h): admission
// in order, GPUs, limits.
#include <signal.h>

#include <map>

#include "tests/daemon/run/orchestrator_fixture.h"

namespace chainctl::daemon::orchestrator_test {
namespace {

// The value of `name` in a launch's environment; nullopt if it is not set.
std::optional<std::string> EnvOf(const TaskLaunch& launch, const std::string& name) {
  for (const std::string& v : launch.env) {
    if (v.starts_with(name + "=")) return v.substr(name.size() + 1);
  }
  return std::nullopt;
}

std::vector<std::string> LaunchOrder(const std::vector<TaskLaunch>& launches) {
  std::vector<std::string> order;
  for (const TaskLaunch& l : launches) order.push_back(l.task_id);
  return order;
}

TEST_F(OrchestratorTest, MemoryRequestsOverCapacityWaitAndStartInOrder) {
  capacity_.memory_bytes = 1ull << 30;
  MakeOrchestrator(2);
  // All three are ready at once; big1 + big2 do not fit together, and small, which would fit
  // beside big1, must not overtake big2.
  Apply(R"(
chain_id: mem
tasks:
  - {task_id: big1, executable_code_location: /bin/cat, resource_requirements: {memory: 700Mi}}
  - {task_id: big2, executable_code_location: /bin/cat, resource_requirements: {memory: 700Mi}}
  - {task_id: small, executable_code_location: /bin/cat, resource_requirements: {memory: 100Mi}}
)");
  std::map<std::string, size_t> launched_at_end;  // task -> launches when it ended
  runner_->behave = [&](const TaskLaunch& launch) {
    launched_at_end[launch.task_id] = runner_->launches.size();
    TaskResult r;
    r.output = "{}";
    return r;
  };
  json run = RunToEnd("mem", json::object());
  EXPECT_EQ(run["status"], "succeeded") << run;
  EXPECT_EQ(LaunchOrder(runner_->launches), (std::vector<std::string>{"big1", "big2", "small"}));
  EXPECT_EQ(launched_at_end["big1"], 1u) << "big2 or small started while big1 held its memory";
  EXPECT_EQ(launched_at_end["big2"], 3u) << "small waited behind big2, then ran beside it";
  EXPECT_EQ(orchestrator_->resources().memory_bytes_used(), 0u);
}

TEST_F(OrchestratorTest, RetryBackoffHoldsNoResources) {
  capacity_.memory_bytes = 1ull << 30;
  MakeOrchestrator(2);
  Apply(R"(
chain_id: mem_retry
tasks:
  - task_id: flaky
    executable_code_location: /bin/cat
    resource_requirements: {memory: 700Mi}
    retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 50ms}
  - {task_id: other, executable_code_location: /bin/cat, resource_requirements: {memory: 700Mi}}
)");
  runner_->behave = [&](const TaskLaunch& launch) {
    return launch.task_id == "flaky" && launch.attempt == 1 ? ExitedWith(1) : Succeeded("{}");
  };
  json run = RunToEnd("mem_retry", json::object());
  EXPECT_EQ(run["status"], "succeeded") << run;
  // `other` ran during flaky's backoff.
  EXPECT_EQ(LaunchOrder(runner_->launches), (std::vector<std::string>{"flaky", "other", "flaky"}));
}

TEST_F(OrchestratorTest, GpusAreGrantedWithoutSharingThroughCudaVisibleDevices) {
  capacity_.gpus = {"0", "1"};
  MakeOrchestrator(3);
  Apply(R"(
chain_id: gpus
tasks:
  - {task_id: g1, executable_code_location: /bin/cat, resource_requirements: {gpu: 1}}
  - task_id: g2
    executable_code_location: /bin/cat
    resource_requirements: {gpu: 1}
    env: {CUDA_VISIBLE_DEVICES: "0"}
  - {task_id: cpu_only, executable_code_location: /bin/cat}
  - {task_id: both, executable_code_location: /bin/cat, resource_requirements: {gpu: 2},
     dependencies: [g1, g2]}
)");
  std::map<std::string, std::string> seen;
  runner_->behave = [&](const TaskLaunch& launch) {
    std::optional<std::string> devices = EnvOf(launch, "CUDA_VISIBLE_DEVICES");
    seen[launch.task_id] = devices.value_or("(unset)");
    int count = 0;
    for (const std::string& v : launch.env) count += v.starts_with("CUDA_VISIBLE_DEVICES=");
    EXPECT_EQ(count, 1) << launch.task_id;
    TaskResult r;
    r.output = "{}";
    return r;
  };
  json run = RunToEnd("gpus", json::object());
  EXPECT_EQ(run["status"], "succeeded") << run;
  EXPECT_EQ(runner_->max_running, 3u);  // g1, g2 and cpu_only together
  EXPECT_EQ(seen["g1"], "0");
  EXPECT_EQ(seen["g2"], "1") << "the task's own env does not override the grant";
  EXPECT_EQ(seen["cpu_only"], "") << "a task without GPUs sees none";
  EXPECT_EQ(seen["both"], "0,1");
  EXPECT_EQ(orchestrator_->resources().gpus_free(), 2u);
}

TEST_F(OrchestratorTest, WithoutGpusCudaVisibleDevicesIsLeftAlone) {
  Apply(kDiamond);
  RunToEnd("diamond", json::object());
  ASSERT_FALSE(runner_->launches.empty());
  for (const TaskLaunch& l : runner_->launches) {
    EXPECT_FALSE(EnvOf(l, "CUDA_VISIBLE_DEVICES")) << l.task_id;
  }
}

TEST_F(OrchestratorTest, TriggerRefusesAChainThatCanNeverFit) {
  // Stored when chaind had more (Apply here skips the API's check), triggered with one GPU.
  capacity_.gpus = {"0"};
  MakeOrchestrator(2);
  Apply(R"(
chain_id: greedy
tasks:
  - {task_id: prep, executable_code_location: /bin/cat}
  - {task_id: train, executable_code_location: /bin/cat, resource_requirements: {gpu: 2},
     dependencies: [prep]}
)");
  json refused = RunToEnd("greedy", json::object());
  EXPECT_EQ(refused["refused"], 422);
  EXPECT_EQ(refused["message"], "chain greedy: task train needs 2 GPUs; chaind has 1 (--gpus 0)");
  EXPECT_TRUE(runner_->launches.empty());
}

TEST_F(OrchestratorTest, LimitsGoToTheLaunch) {
  Apply(R"(
chain_id: limits
tasks:
  - task_id: capped
    executable_code_location: /bin/cat
    resource_requirements: {cpu: 0.5, memory: 64Mi, timeout: 3s}
  - {task_id: cpu_only, executable_code_location: /bin/cat, resource_requirements: {cpu: 2}}
  - {task_id: plain, executable_code_location: /bin/cat}
)");
  RunToEnd("limits", json::object());
  std::map<std::string, TaskLaunch> by_task;
  for (const TaskLaunch& l : runner_->launches) by_task[l.task_id] = l;
  EXPECT_EQ(by_task["capped"].memory_limit_bytes, 64u << 20);
  EXPECT_EQ(by_task["capped"].cpu_limit_s, 2u);  // 0.5 core x 3 s, rounded up
  EXPECT_EQ(by_task["cpu_only"].cpu_limit_s, 0u) << "cpu without timeout: admission only";
  EXPECT_EQ(by_task["plain"].memory_limit_bytes, 0u);
  EXPECT_EQ(by_task["plain"].cpu_limit_s, 0u);
}

TEST_F(OrchestratorTest, CpuLimitKillIsNamedInTheHistory) {
  Apply(R"(
chain_id: spin
tasks:
  - {task_id: spin, executable_code_location: /bin/cat, resource_requirements: {cpu: 1, timeout: 1s}}
)");
  runner_->behave = [](const TaskLaunch&) {
    TaskResult r;
    r.kind = TaskResult::Kind::kSignaled;
    r.signal = SIGXCPU;
    r.error = "killed by signal 24 (SIGXCPU): over its CPU-time limit of 1s (cpu x timeout)";
    return r;
  };
  std::string run_id;
  json run = RunToEnd("spin", json::object(), &run_id);
  EXPECT_EQ(TaskOf(run, "spin")["error"],
            "killed by signal 24 (SIGXCPU): over its CPU-time limit of 1s (cpu x timeout)");
  std::vector<HistoryRecord> records;
  std::string err;
  HistoryQuery query;
  query.run_id = run_id;
  ASSERT_TRUE(history_->Find(query, &records, &err)) << err;
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].cause, "signal 24 (cpu limit)");
}

}  // namespace
}  // namespace chainctl::daemon::orchestrator_test
