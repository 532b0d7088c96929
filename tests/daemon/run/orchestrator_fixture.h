// Shared by the Orchestrator tests (orchestrator_test.cc, orchestrator_recovery_test.cc,
// orchestrator_resources_test.cc): FakeRunner, a TaskRunner without processes, and the
// OrchestratorTest fixture (a store, registry, history and writer in a temporary folder; an
// orchestrator over them and the FakeRunner). Header-only (tests/CMakeLists.txt builds
// *_test.cc only); not in an anonymous namespace, so that the test files share one fixture class.
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/chain/load.h"
#include "daemon/run/orchestrator.h"
#include "tests/test_util.h"

namespace chainctl::daemon::orchestrator_test {

using nlohmann::json;

// How an attempt of a task that exits with `code` ends, as the runner reports it.
inline TaskResult ExitedWith(int code) {
  TaskResult r;
  r.exit_code = code;
  r.error = "exited with status " + std::to_string(code);
  return r;
}

// How an attempt that printed `output` and exited 0 ends.
inline TaskResult Succeeded(std::string output) {
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

inline constexpr const char* kDiamond = R"(
chain_id: diamond
tasks:
  - {task_id: src, executable_code_location: /bin/cat}
  - {task_id: left, executable_code_location: /bin/cat, dependencies: [src]}
  - {task_id: right, executable_code_location: /bin/cat, dependencies: [src]}
  - task_id: join
    executable_code_location: /bin/cat
    dependencies: [left, right]
)";

}  // namespace chainctl::daemon::orchestrator_test
