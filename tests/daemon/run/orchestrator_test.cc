#include "daemon/run/orchestrator.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/chain/load.h"
#include "daemon/store/run_keys.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

// How an attempt of a task that exits with `code` ends, as the runner reports it.
TaskResult ExitedWith(int code) {
  TaskResult r;
  r.exit_code = code;
  r.error = "exited with status " + std::to_string(code);
  return r;
}

// How an attempt that printed `output` and exited 0 ends.
TaskResult Succeeded(std::string output) {
  TaskResult r;
  r.output = std::move(output);
  return r;
}

// A TaskRunner without processes: each started attempt is answered on a later loop iteration
// by `behave`, which sees the launch (its stdin is the task's input).
class FakeRunner : public TaskRunner {
 public:
  using Behave = std::function<TaskResult(const TaskLaunch&)>;

  // The timer lives on the heap until its close callback: a runner replaced in a test is freed
  // before the loop has finished closing it.
  explicit FakeRunner(uv_loop_t* loop) : timer_(*new uv_timer_t) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
  }
  ~FakeRunner() override {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

  Handle Start(TaskLaunch launch, Done done) override {
    if (!launch.stdin_file.empty()) launch.stdin_data = testing::ReadFileOrDie(launch.stdin_file);
    launches.push_back(launch);
    pending_.push_back({++last_, std::move(launch), std::move(done)});
    max_running = std::max(max_running, pending_.size());
    uv_timer_start(&timer_, OnTimer, 0, 0);
    return last_;
  }
  void Cancel(Handle handle) override {
    cancelled_.push_back(handle);
    uv_timer_start(&timer_, OnTimer, 0, 0);
  }
  size_t running() const override { return pending_.size(); }
  json Locate(Handle handle) const override { return {{"fake", handle}}; }
  void StopOrphan(const json& where) override { orphans_stopped.push_back(where); }

  Behave behave = [](const TaskLaunch& launch) {
    TaskResult r;
    r.output = launch.stdin_data;  // cat
    return r;
  };
  std::vector<TaskLaunch> launches;
  std::vector<json> orphans_stopped;
  size_t max_running = 0;
  bool hold = false;  // keep attempts running (for cancel)

 private:
  struct Pending {
    Handle handle;
    TaskLaunch launch;
    Done done;
  };
  static void OnTimer(uv_timer_t* timer) {
    auto* self = static_cast<FakeRunner*>(timer->data);
    std::deque<Pending> batch;
    batch.swap(self->pending_);
    for (Pending& p : batch) {
      bool cancel = std::find(self->cancelled_.begin(), self->cancelled_.end(), p.handle) !=
                    self->cancelled_.end();
      if (self->hold && !cancel) {
        self->pending_.push_back(std::move(p));
        continue;
      }
      TaskResult r;
      if (cancel) {
        r.kind = TaskResult::Kind::kCancelled;
        r.error = "cancelled";
      } else {
        r = self->behave(p.launch);
      }
      p.done(std::move(r));
    }
    if (!self->pending_.empty() && !self->hold) uv_timer_start(timer, OnTimer, 0, 0);
  }

  uv_timer_t& timer_;
  std::deque<Pending> pending_;
  std::vector<Handle> cancelled_;
  Handle last_ = 0;
};

class OrchestratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store", .initial_map_size = 1 << 24}, &err);
    ASSERT_TRUE(store_) << err;
    registry_ = std::make_unique<Registry>(store_.get());
    history_ = std::make_unique<History>(store_.get());
    writer_ = std::make_unique<StoreWriter>(&loop_, store_.get());
    runner_ = std::make_unique<FakeRunner>(&loop_);
    MakeOrchestrator(2);
  }

  void MakeOrchestrator(size_t jobs, size_t keep_run_dirs = 1000) {
    OrchestratorOptions options;
    options.runs_dir = tmp_.path() + "/runs";
    options.jobs = jobs;
    options.keep_run_dirs = keep_run_dirs;
    options.base_env = {"PATH=/usr/bin:/bin", "CHAIN_RUN_ID=from-a-parent"};
    options.capacity = capacity_;
    orchestrator_ =
        std::make_unique<Orchestrator>(&loop_, registry_.get(), history_.get(), store_.get(),
                                       writer_.get(), runner_.get(), options);
    std::string err;
    ASSERT_TRUE(orchestrator_->Open(&err)) << err;
  }

  void TearDown() override {
    orchestrator_.reset();
    runner_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }

  void Apply(const std::string& yaml) {
    LoadOptions options;
    options.check_executables = false;
    Diagnostics diags;
    std::optional<Chain> chain = ParseChain(yaml, "test.yaml", options, &diags);
    ASSERT_TRUE(chain) << (diags.empty() ? "" : FormatDiagnostic(diags[0]));
    ChainVersion version;
    bool created = false;
    std::string err;
    ASSERT_TRUE(registry_->PutChain(*chain, &version, &created, &err)) << err;
  }

  // Triggers a run and runs the loop until everything settled; returns the run record.
  json RunToEnd(const std::string& chain_id, json input, std::string* run_id = nullptr) {
    std::string id;
    std::optional<RunError> error;
    orchestrator_->Trigger(chain_id, 0, std::move(input),
                           [&](std::optional<RunError> e, const std::string& r) {
                             error = e;
                             id = r;
                           });
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (error) return {{"refused", error->status}, {"message", error->message}};
    if (run_id) *run_id = id;
    std::optional<json> record;
    std::string err;
    EXPECT_TRUE(orchestrator_->GetRun(id, &record, &err)) << err;
    return record.value_or(json());
  }

  // Resumes a run and runs the loop until everything settled; the run record, or
  // {"refused": status, "message"}.
  json ResumeToEnd(const std::string& run_id) {
    std::optional<RunError> error;
    orchestrator_->Resume(run_id,
                          [&](std::optional<RunError> e, const std::string&) { error = e; });
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (error) return {{"refused", error->status}, {"message", error->message}};
    std::optional<json> record;
    std::string err;
    EXPECT_TRUE(orchestrator_->GetRun(run_id, &record, &err)) << err;
    return record.value_or(json());
  }

  static json TaskOf(const json& run, const std::string& task_id) {
    for (const json& t : run["tasks"]) {
      if (t["task_id"] == task_id) return t;
    }
    return nullptr;
  }

  std::vector<json> Events(const std::string& run_id) {
    std::vector<json> events;
    uint64_t id = 0;
    orchestrator_->Follow(run_id, false,
                          {.events =
                               [&](const std::string& lines) {
                                 std::istringstream in(lines);
                                 for (std::string line; std::getline(in, line);)
                                   events.push_back(json::parse(line));
                               },
                           .end = [] {}},
                          &id);
    return events;
  }

  testing::ScopedTempDir tmp_;
  uv_loop_t loop_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<History> history_;
  std::unique_ptr<StoreWriter> writer_;
  std::unique_ptr<FakeRunner> runner_;
  std::unique_ptr<Orchestrator> orchestrator_;
  Capacity capacity_;  // MakeOrchestrator's
};

constexpr const char* kDiamond = R"(
chain_id: diamond
tasks:
  - {task_id: src, executable_code_location: /bin/cat}
  - {task_id: left, executable_code_location: /bin/cat, dependencies: [src]}
  - {task_id: right, executable_code_location: /bin/cat, dependencies: [src]}
  - task_id: join
    executable_code_location: /bin/cat
    dependencies: [left, right]
)";

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

// --- Resources (daemon/run/resources.h): admission in order, GPUs, limits. ---

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
}  // namespace chainctl::daemon
