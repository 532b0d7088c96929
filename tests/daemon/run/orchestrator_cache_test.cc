// The task cache in runs (orchestrator_cache.cc): a second run restores what the first stored
// (output, out/ files, project outputs) and ends the task `cached`; an edited source, --no-cache,
// a failed attempt and a corrupt entry each make the task run. With a FakeRunner: launches are
// counted, never timed.
#include <filesystem>
#include <fstream>

#include "common/hash_memo.h"
#include "daemon/store/task_cache.h"
#include "tests/daemon/run/orchestrator_fixture.h"

namespace chainctl::daemon::orchestrator_test {
namespace {

namespace fs = std::filesystem;

std::string EnvOf(const TaskLaunch& launch, const std::string& name) {
  for (const std::string& v : launch.env) {
    if (v.rfind(name + "=", 0) == 0) return v.substr(name.size() + 1);
  }
  return "";
}

class OrchestratorCacheTest : public OrchestratorTest {
 protected:
  void SetUp() override {
    OrchestratorTest::SetUp();
    project_ = tmp_.path() + "/proj";
    tmp_.WriteFile("proj/src/a.txt", "one");
    cache_ = std::make_unique<TaskCache>(TaskCache::Options{.dir = tmp_.path() + "/cache"});
    std::string err;
    ASSERT_TRUE(cache_->Open(&err)) << err;
    orchestrator_->UseCache(cache_.get(), &memo_);
    Apply("chain_id: proj\nsource_dir: " + project_ +
          "\ntasks:\n"
          "  - {task_id: build, executable_code_location: /bin/cat, sources: ['src/*.txt'],"
          " outputs: ['build/*.txt']}\n"
          "  - {task_id: use, executable_code_location: /bin/cat, dependencies: [build]}\n");
    // build writes a project output and a file for its dependents, and says how many times it
    // ran; use echoes its input.
    runner_->behave = [this](const TaskLaunch& launch) {
      if (launch.task_id != "build") return Succeeded(launch.stdin_data);
      ++builds_;
      fs::create_directories(project_ + "/build");
      std::ofstream(project_ + "/build/out.txt") << "built " << builds_;
      std::ofstream(EnvOf(launch, "CHAIN_OUTDIR") + "/table.csv") << "1," << builds_;
      return fails_ ? ExitedWith(1) : Succeeded(json{{"built", builds_}}.dump());
    };
  }

  json Run(RunParams params = {}) {
    std::optional<RunError> error;
    std::string id;
    orchestrator_->Trigger(
        "proj", 0, json::object(),
        [&](std::optional<RunError> e, const std::string& r) {
          error = e;
          id = r;
        },
        std::move(params));
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_FALSE(error) << error->message;
    std::optional<json> record;
    std::string err;
    EXPECT_TRUE(orchestrator_->GetRun(id, &record, &err)) << err;
    return record.value_or(json());
  }

  size_t Launches(const std::string& task_id) const {
    return static_cast<size_t>(
        std::count_if(runner_->launches.begin(), runner_->launches.end(),
                      [&](const TaskLaunch& l) { return l.task_id == task_id; }));
  }

  std::string project_;
  HashMemo memo_;
  std::unique_ptr<TaskCache> cache_;
  int builds_ = 0;
  bool fails_ = false;
};

TEST_F(OrchestratorCacheTest, ASecondRunRestoresWhatTheFirstStored) {
  json first = Run();
  ASSERT_EQ(first["status"], "succeeded") << first.dump();
  EXPECT_EQ(TaskOf(first, "build")["cache"]["reason"], "first run");
  EXPECT_EQ(TaskOf(first, "use").count("cache"), 0u) << "use has no sources: caching off";

  fs::remove_all(project_ + "/build");
  json second = Run();
  ASSERT_EQ(second["status"], "succeeded") << second.dump();
  EXPECT_EQ(Launches("build"), 1u) << "the second run did not run build";
  EXPECT_EQ(Launches("use"), 2u);
  json build = TaskOf(second, "build");
  EXPECT_EQ(build["state"], "cached");
  EXPECT_EQ(build["attempts"], 0);
  EXPECT_EQ(build["cache"]["hit"], true);
  EXPECT_EQ(build["cache"]["key"], TaskOf(first, "build")["cache"]["key"]);
  EXPECT_EQ(second["output"], first["output"]);
  EXPECT_EQ(second["output"], (json{{"built", 1}}));
  EXPECT_EQ(testing::ReadFileOrDie(project_ + "/build/out.txt"), "built 1");
  // use saw exactly what it saw the first time: the input, and build's out/ files.
  EXPECT_EQ(runner_->launches.back().stdin_data, runner_->launches[1].stdin_data);
  EXPECT_EQ(testing::ReadFileOrDie(EnvOf(runner_->launches.back(), "CHAIN_WORKDIR") +
                                   "/inputs/build/table.csv"),
            "1,1");
  EXPECT_EQ(second["task_states"]["cached"], 1);

  bool cached_event = false;
  for (const json& e : Events(second["run_id"])) {
    if (e["type"] == "task_finished" && e["task_id"] == "build") {
      cached_event = e["state"] == "cached" && e["cache"]["hit"] == true;
    }
  }
  EXPECT_TRUE(cached_event);
  std::vector<HistoryRecord> records;
  std::string err;
  ASSERT_TRUE(history_->Find({}, &records, &err)) << err;
  size_t cached_records = 0;
  for (const HistoryRecord& r : records) cached_records += r.cached.value_or(false) ? 1u : 0u;
  EXPECT_EQ(cached_records, 1u);
}

TEST_F(OrchestratorCacheTest, AnEditedSourceRunsTheTaskAgainAndSaysWhy) {
  Run();
  tmp_.WriteFile("proj/src/a.txt", "two");
  json second = Run();
  EXPECT_EQ(Launches("build"), 2u);
  EXPECT_EQ(TaskOf(second, "build")["state"], "succeeded");
  EXPECT_EQ(TaskOf(second, "build")["cache"]["reason"], "src/a.txt changed");
  EXPECT_EQ(second["output"], (json{{"built", 2}}));
  tmp_.WriteFile("proj/src/a.txt", "one");  // back as it was: the first entry again
  json third = Run();
  EXPECT_EQ(Launches("build"), 2u);
  EXPECT_EQ(third["output"], (json{{"built", 1}}));
}

TEST_F(OrchestratorCacheTest, NoCacheRunsTheTaskAndStillStoresItsResult) {
  json forced = Run({.no_cache = true});
  EXPECT_EQ(forced["no_cache"], true);
  EXPECT_EQ(TaskOf(forced, "build")["cache"]["reason"], "--no-cache");
  json again = Run({.no_cache = true});
  EXPECT_EQ(Launches("build"), 2u) << "--no-cache runs the task each time";
  json after = Run();
  EXPECT_EQ(Launches("build"), 2u) << "what the forced runs produced was stored";
  EXPECT_EQ(TaskOf(after, "build")["state"], "cached");
  // One key, one entry: the first result stored stays (as between two chainds).
  EXPECT_EQ(after["output"], (json{{"built", 1}}));
}

TEST_F(OrchestratorCacheTest, AFailedTaskIsNotStored) {
  fails_ = true;
  EXPECT_EQ(Run()["status"], "failed");
  fails_ = false;
  json second = Run();
  EXPECT_EQ(Launches("build"), 2u);
  EXPECT_EQ(second["status"], "succeeded") << second.dump();
}

TEST_F(OrchestratorCacheTest, ACorruptEntryIsNeverRestored) {
  Run();
  size_t corrupted = 0;
  for (const auto& entry : fs::recursive_directory_iterator(tmp_.path() + "/cache")) {
    if (entry.path().filename() == "table.csv") {
      std::ofstream(entry.path()) << "9,9";  // same size, other bytes
      ++corrupted;
    }
  }
  ASSERT_EQ(corrupted, 1u);
  json second = Run();
  EXPECT_EQ(Launches("build"), 2u);
  EXPECT_EQ(TaskOf(second, "build")["state"], "succeeded");
  EXPECT_NE(TaskOf(second, "build")["cache"]["reason"].get<std::string>().find("corrupt"),
            std::string::npos)
      << second.dump();
  EXPECT_EQ(testing::ReadFileOrDie(EnvOf(runner_->launches.back(), "CHAIN_WORKDIR") +
                                   "/inputs/build/table.csv"),
            "1,2")
      << "use got the files of the run, not the corrupt entry's";
}

}  // namespace
}  // namespace chainctl::daemon::orchestrator_test
