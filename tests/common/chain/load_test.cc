#include "common/chain/load.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace chainctl {
namespace {

using testing::ScopedTempDir;

std::vector<std::string> Messages(const Diagnostics& diags) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diags) out.push_back(FormatDiagnostic(d));
  return out;
}

// A chain file that sets every field, written with the executable it names and loaded.
class ChainLoadEveryField : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("bin/run.sh", "#!/bin/sh\n", /*executable=*/true);
    std::string path = dir_.WriteFile("chains/etl.yaml", R"(
chain_id: etl
description: demo
timeout: 10m
tasks:
  - task_id: extract
    executable_code_location: ../bin/run.sh
    args: ["--fast"]
    env: {MODE: quick}
    input_schema: {type: object, required: [date]}
    output_schema: {type: object}
    resource_requirements: {cpu: 500m, memory: 512Mi, gpu: 1, timeout: 60s, max_output: 1Mi}
    prefetch_weight: 0.8
    prewarm: spawn
    mode: worker
    retry: {max_attempts: 3, initial_backoff: 1s, max_backoff: 30s, multiplier: 2.5}
    inputs: {files: ["data/*.csv", "https://example.org/x.tar"], link: true}
  - task_id: load
    command: "cat > /dev/null"
    dependencies: [extract]
    when:
      - {path: /extract/rows, op: gt, value: 0}
      - {path: /trigger/force, op: not_exists}
    trigger_rule: all_done
    input_map: {rows: /extract/rows, day: /trigger/date}
)");
    Diagnostics diags;
    chain_ = LoadChainFile(path, {}, &diags);
    ASSERT_TRUE(chain_) << Messages(diags)[0];
    ASSERT_EQ(chain_->tasks.size(), 2u);
  }
  const TaskSpec& extract() const { return chain_->tasks[0]; }
  const TaskSpec& load() const { return chain_->tasks[1]; }

  ScopedTempDir dir_;
  std::optional<Chain> chain_;
};

TEST_F(ChainLoadEveryField, DecodesTheChainsFields) {
  EXPECT_EQ(chain_->chain_id, "etl");
  EXPECT_EQ(chain_->description, "demo");
  EXPECT_EQ(chain_->timeout, std::chrono::minutes(10));
}

TEST_F(ChainLoadEveryField, DecodesHowATaskIsRun) {
  const TaskSpec& e = extract();
  EXPECT_EQ(e.executable_code_location, dir_.path() + "/bin/run.sh");  // made absolute
  EXPECT_EQ(e.args, std::vector<std::string>{"--fast"});
  EXPECT_EQ(e.env.at("MODE"), "quick");
  EXPECT_EQ(e.input_schema["required"][0], "date");
  EXPECT_EQ(load().command, "cat > /dev/null");
}

TEST_F(ChainLoadEveryField, DecodesResourceRequirements) {
  const ResourceRequirements& r = extract().resource_requirements;
  EXPECT_EQ(r.cpu_millis, 500);
  EXPECT_EQ(r.memory_bytes, 512u << 20);
  EXPECT_EQ(r.gpu, 1);
  EXPECT_EQ(r.timeout, std::chrono::seconds(60));
  EXPECT_EQ(r.max_output_bytes, 1u << 20);
}

TEST_F(ChainLoadEveryField, DecodesPrefetchingAndRetries) {
  const TaskSpec& e = extract();
  EXPECT_DOUBLE_EQ(e.prefetch_weight, 0.8);
  EXPECT_EQ(e.prewarm, PrewarmLevel::kSpawn);
  EXPECT_EQ(e.mode, TaskMode::kWorker);
  EXPECT_EQ(e.retry.max_attempts, 3);
  EXPECT_EQ(e.retry.initial_backoff, std::chrono::seconds(1));
  EXPECT_EQ(e.retry.max_backoff, std::chrono::seconds(30));
  EXPECT_DOUBLE_EQ(e.retry.multiplier, 2.5);
}

TEST_F(ChainLoadEveryField, DecodesInputFiles) {
  EXPECT_EQ(extract().input_files.size(), 2u);
  EXPECT_TRUE(extract().link_inputs);
  EXPECT_FALSE(load().link_inputs);  // by default, staged files are the task's own
}

TEST_F(ChainLoadEveryField, DecodesDependenciesConditionsAndInputMap) {
  const TaskSpec& l = load();
  EXPECT_EQ(l.dependencies, std::vector<std::string>{"extract"});
  ASSERT_EQ(l.when.size(), 2u);
  EXPECT_EQ(l.when[0].op, ConditionOp::kGt);
  EXPECT_EQ(l.when[0].value, 0);
  EXPECT_EQ(l.when[1].op, ConditionOp::kNotExists);
  EXPECT_EQ(l.trigger_rule, TriggerRule::kAllDone);
  EXPECT_EQ(l.input_map.at("day"), "/trigger/date");
}

TEST(ChainLoad, DefaultsFollowTheDesign) {
  Diagnostics diags;
  auto chain = ParseChain("tasks: [{task_id: a, command: x}]", "c.yaml", {}, &diags);
  ASSERT_TRUE(chain);
  const TaskSpec& t = chain->tasks[0];
  EXPECT_TRUE(chain->chain_id.empty());
  EXPECT_FALSE(chain->timeout);
  EXPECT_EQ(t.input_schema, true);
  EXPECT_EQ(t.resource_requirements.cpu_millis, 0);  // not declared
  EXPECT_EQ(t.resource_requirements.memory_bytes, 0u);
  EXPECT_EQ(t.resource_requirements.gpu, 0);
  EXPECT_EQ(t.resource_requirements.max_output_bytes, 16u << 20);
  EXPECT_FALSE(t.resource_requirements.timeout);
  EXPECT_DOUBLE_EQ(t.prefetch_weight, 1.0);
  EXPECT_EQ(t.prewarm, PrewarmLevel::kStage);
  EXPECT_EQ(t.mode, TaskMode::kOneshot);
  EXPECT_EQ(t.retry.max_attempts, 1);
  EXPECT_EQ(t.trigger_rule, TriggerRule::kAllSuccess);
}

TEST(ChainLoad, JsonAndYamlGiveTheSameChain) {
  const char* yaml = R"(
tasks:
  - {task_id: a, command: x, resource_requirements: {memory: 1Gi}}
  - {task_id: b, command: y, dependencies: [a], when: {path: /a/ok, op: eq, value: true}}
)";
  const char* json = R"({"tasks": [
    {"task_id": "a", "command": "x", "resource_requirements": {"memory": "1Gi"}},
    {"task_id": "b", "command": "y", "dependencies": ["a"],
     "when": {"path": "/a/ok", "op": "eq", "value": true}}]})";
  Diagnostics diags;
  auto from_yaml = ParseChain(yaml, "c.yaml", {}, &diags);
  auto from_json = ParseChain(json, "c.json", {}, &diags);
  ASSERT_TRUE(from_yaml && from_json) << Messages(diags)[0];
  EXPECT_EQ(ChainToJson(*from_yaml), ChainToJson(*from_json));
}

TEST(ChainLoad, ChainToJsonRoundTrips) {
  ScopedTempDir dir;
  std::string exe = dir.WriteFile("run", "#!/bin/sh\n", true);
  std::string text = R"({"chain_id": "rt", "timeout": "90s", "tasks": [
    {"task_id": "a", "executable_code_location": ")" +
                     exe + R"(", "args": ["-v"],
     "resource_requirements": {"cpu": 0.25, "memory": 1536, "timeout": "1.5s"},
     "retry": {"max_attempts": 4}, "prewarm": "off", "prefetch_weight": 0.3},
    {"task_id": "b", "command": "y", "dependencies": ["a"], "input_map": {"x": "/a/x"},
     "when": [{"path": "/a/x", "op": "in", "value": [1, 2]}], "trigger_rule": "one_success",
     "inputs": {"files": ["*.csv"]}}]})";
  Diagnostics diags;
  auto first = ParseChain(text, "rt.json", {}, &diags);
  ASSERT_TRUE(first) << Messages(diags)[0];
  nlohmann::json dumped = ChainToJson(*first);
  auto second = ParseChain(dumped.dump(), "rt.json", {}, &diags);
  ASSERT_TRUE(second) << Messages(diags)[0];
  EXPECT_EQ(ChainToJson(*second), dumped);
  EXPECT_EQ(dumped["timeout"], "1m30s");
  EXPECT_EQ(dumped["tasks"][0]["resource_requirements"]["cpu"], "250m");
}

// LoadOptions::resource_misfits (chaind's capacity): an error at the offending field.
TEST(ChainLoad, ResourceMisfitsAreErrorsAtTheirField) {
  LoadOptions options;
  options.resource_misfits = [](const ResourceRequirements& r) {
    std::vector<ResourceMisfit> misfits;
    if (r.gpu > 1) misfits.push_back({"gpu", "needs 2 GPUs; chaind has 1 (--gpus 0)"});
    return misfits;
  };
  Diagnostics diags;
  auto chain = ParseChain(
      "tasks:\n"
      "  - {task_id: prep, command: x, resource_requirements: {gpu: 1}}\n"
      "  - task_id: train\n"
      "    command: y\n"
      "    resource_requirements: {gpu: 2}\n",
      "c.yaml", options, &diags);
  EXPECT_FALSE(chain);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(FormatDiagnostic(diags[0]),
            "c.yaml:5:34: tasks[1].resource_requirements.gpu: task train needs 2 GPUs; chaind "
            "has 1 (--gpus 0)");
}

// cpu 0 means "not declared", so one core declared is kept (it used to be the default).
TEST(ChainLoad, DeclaredCpuIsKeptAndUndeclaredIsLeftOut) {
  Diagnostics diags;
  auto chain = ParseChain(
      "tasks: [{task_id: a, command: x, resource_requirements: {cpu: 1}},\n"
      "        {task_id: b, command: y}]",
      "c.yaml", {}, &diags);
  ASSERT_TRUE(chain) << Messages(diags)[0];
  nlohmann::json dumped = ChainToJson(*chain);
  EXPECT_EQ(dumped["tasks"][0]["resource_requirements"], nlohmann::json({{"cpu", 1}}));
  EXPECT_FALSE(dumped["tasks"][1].contains("resource_requirements"));
}

TEST(ChainLoad, AllErrorsOfAFileAtOnceInOrder) {
  Diagnostics diags;
  auto chain = ParseChain(R"(
tasks:
  - task_id: b
    command: x
    dependencies: [a, zz]
    prewarm: hot
  - task_id: a
    command: x
    dependencies: [b]
    extra: 1
)",
                          "c.yaml", {}, &diags);
  EXPECT_FALSE(chain);
  EXPECT_EQ(Messages(diags),
            (std::vector<std::string>{
                "c.yaml:5:23: tasks[0].dependencies[1]: unknown task \"zz\"",
                "c.yaml:6:14: tasks[0].prewarm: must be one of: off, stage, spawn (got \"hot\")",
                "c.yaml:9:20: tasks[1].dependencies[0]: cycle: b -> a -> b",
                "c.yaml:10:5: tasks[1].extra: unknown field \"extra\"",
            }));
}

TEST(ChainLoad, ExecutableChecksCanBeTurnedOff) {
  Diagnostics diags;
  const char* text = "tasks: [{task_id: a, executable_code_location: /no/such/file}]";
  EXPECT_FALSE(ParseChain(text, "c.yaml", {}, &diags));
  EXPECT_EQ(Messages(diags)[0],
            "c.yaml:1:48: tasks[0].executable_code_location: executable \"/no/such/file\" not "
            "found");
  LoadOptions options;
  options.check_executables = false;
  diags.clear();
  EXPECT_TRUE(ParseChain(text, "c.yaml", options, &diags));
}

TEST(ChainLoad, ApiOptions) {
  LoadOptions options;
  options.require_absolute_executables = true;
  Diagnostics diags;
  bool malformed = true;
  EXPECT_FALSE(ParseChain("tasks: [{task_id: a, executable_code_location: run.sh}]", "request",
                          options, &diags, &malformed));
  EXPECT_FALSE(malformed);
  EXPECT_EQ(Messages(diags)[0],
            "request:1:48: tasks[0].executable_code_location: executable \"run.sh\" must be an "
            "absolute path here (chainctl apply makes paths absolute)");
  diags.clear();
  EXPECT_FALSE(ParseChain("tasks: [", "request", options, &diags, &malformed));
  EXPECT_TRUE(malformed);
}

TEST(ChainLoad, UnreadableFiles) {
  ScopedTempDir dir;
  Diagnostics diags;
  EXPECT_FALSE(LoadChainFile(dir.path() + "/missing.yaml", {}, &diags));
  EXPECT_EQ(Messages(diags)[0],
            dir.path() + "/missing.yaml: cannot read: No such file or directory");
  diags.clear();
  EXPECT_FALSE(LoadChainFile(dir.path(), {}, &diags));
  EXPECT_EQ(Messages(diags)[0], dir.path() + ": is a directory, not a chain file");
}

TEST(ChainLoad, ValidTaskSchemasAndMetaSchemaRef) {
  Diagnostics diags;
  auto chain = ParseChain(R"(
tasks:
  - task_id: a
    command: x
    input_schema: {$ref: "http://json-schema.org/draft-07/schema#"}
    output_schema: false
)",
                          "c.yaml", {}, &diags);
  EXPECT_TRUE(chain) << Messages(diags)[0];
}

}  // namespace
}  // namespace chainctl
