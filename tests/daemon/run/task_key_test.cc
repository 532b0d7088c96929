// The task cache key (daemon/run/task_key.h): each of its inputs changes it, nothing else does,
// and ExplainMiss names what changed.
#include "daemon/run/task_key.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;
using testing::ScopedTempDir;

class TaskKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_.WriteFile("project/src/a.py", "print('a')\n");
    tmp_.WriteFile("project/src/b.py", "print('b')\n");
    tmp_.WriteFile("project/notes.txt", "not a source\n");
    tmp_.WriteFile("project/run.sh", "#!/bin/sh\necho '{}'\n");
    tmp_.WriteFile("runs/dep/out/table.csv", "1,2\n");
    request_.spec.task_id = "build";
    request_.spec.source_dir = tmp_.path() + "/project";
    request_.spec.executable_code_location = tmp_.path() + "/project/run.sh";
    request_.spec.sources = {"src/**/*.py"};
    request_.spec.env = {{"MODE", "fast"}};
    request_.input_json = R"({"day":"2026-12-07"})";
    request_.dep_dirs = {tmp_.path() + "/runs/dep/out"};
  }

  TaskKeyParts Parts(const TaskKeyRequest& request) {
    TaskKeyParts parts;
    std::string err;
    EXPECT_TRUE(ComputeTaskKey(request, &memo_, &parts, &err)) << err;
    return parts;
  }
  Hash128 Key(const TaskKeyRequest& request) { return CacheKey(Parts(request)); }

  ScopedTempDir tmp_;
  HashMemo memo_;
  TaskKeyRequest request_;
};

TEST_F(TaskKeyTest, EachInputChangesTheKey) {
  const Hash128 base = Key(request_);
  EXPECT_EQ(Key(request_), base) << "the same inputs make the same key";

  auto changed = [&](auto edit) {
    TaskKeyRequest r = request_;
    edit(r);
    return Key(r);
  };
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.input_json = R"({"day":"2026-12-08"})"; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.env["MODE"] = "slow"; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.env["EXTRA"] = "1"; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.args = {"--fast"}; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.outputs = {"build/x"}; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.working_dir = "src"; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.spec.output_schema = {{"type", "object"}}; }), base);
  EXPECT_NE(changed([](TaskKeyRequest& r) { r.dep_dirs.clear(); }), base);

  tmp_.WriteFile("project/src/a.py", "print('A')\n");  // a source's bytes
  const Hash128 edited = Key(request_);
  EXPECT_NE(edited, base);
  tmp_.WriteFile("project/src/new/c.py", "print('c')\n");  // a source added
  const Hash128 added = Key(request_);
  EXPECT_NE(added, edited);
  std::filesystem::rename(tmp_.path() + "/project/src/new/c.py",
                          tmp_.path() + "/project/src/new/d.py");  // renamed
  EXPECT_NE(Key(request_), added);
  tmp_.WriteFile("runs/dep/out/table.csv", "1,3\n");  // a dependency's file
  const Hash128 dep = Key(request_);
  tmp_.WriteFile("project/run.sh", "#!/bin/sh\necho '{\"v\":2}'\n");  // the executable
  EXPECT_NE(Key(request_), dep);
}

TEST_F(TaskKeyTest, NothingElseChangesTheKey) {
  const Hash128 base = Key(request_);
  auto same = [&](auto edit) {
    TaskKeyRequest r = request_;
    edit(r);
    return Key(r);
  };
  // What decides whether and how a task runs, not what it computes.
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.description = "other words"; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.prefetch_weight = 0.1; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.prewarm = PrewarmLevel::kSpawn; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.retry.max_attempts = 5; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.dependencies = {"dep"}; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.resource_requirements.cpu_millis = 4000; }), base);
  EXPECT_EQ(same([](TaskKeyRequest& r) { r.spec.cwd = "/elsewhere"; }), base);
  // Files the globs do not match, and timestamps.
  tmp_.WriteFile("project/notes.txt", "edited\n");
  tmp_.WriteFile("project/src/readme.md", "not matched\n");
  EXPECT_EQ(Key(request_), base);
  tmp_.WriteFile("project/src/b.py", "print('b')\n");  // rewritten, same bytes
  EXPECT_EQ(Key(request_), base);
}

TEST_F(TaskKeyTest, TheProjectsPlaceIsNotPartOfIt) {
  const Hash128 here = Key(request_);
  std::filesystem::rename(tmp_.path() + "/project", tmp_.path() + "/moved");
  TaskKeyRequest moved = request_;
  moved.spec.source_dir = tmp_.path() + "/moved";
  moved.spec.executable_code_location = tmp_.path() + "/moved/run.sh";
  EXPECT_EQ(Key(moved), here) << "a checkout elsewhere (another CI runner) shares keys";
}

TEST_F(TaskKeyTest, AnUnreadableExecutableOrSourceIsAnError) {
  TaskKeyRequest r = request_;
  r.spec.executable_code_location = tmp_.path() + "/project/missing.sh";
  TaskKeyParts parts;
  std::string err;
  EXPECT_FALSE(ComputeTaskKey(r, &memo_, &parts, &err));
  EXPECT_NE(err.find("missing.sh"), std::string::npos) << err;
  r = request_;
  r.spec.source_dir = tmp_.path() + "/nowhere";
  EXPECT_FALSE(ComputeTaskKey(r, &memo_, &parts, &err));
}

TEST_F(TaskKeyTest, ExplainMissNamesWhatChanged) {
  json last = DescribeKeyParts(Parts(request_));
  EXPECT_EQ(ExplainMiss(nullptr, Parts(request_)), "first run");
  EXPECT_EQ(ExplainMiss(last, Parts(request_)), "no entry for this key");
  tmp_.WriteFile("project/src/a.py", "print('A')\n");
  tmp_.WriteFile("project/src/z.py", "new\n");
  std::filesystem::remove(tmp_.path() + "/project/src/b.py");
  EXPECT_EQ(ExplainMiss(last, Parts(request_)),
            "src/a.py changed, src/z.py added, src/b.py removed");
  for (int i = 0; i < 3; ++i) tmp_.WriteFile("project/src/m" + std::to_string(i) + ".py", "m");
  EXPECT_EQ(ExplainMiss(last, Parts(request_)),
            "src/a.py changed, src/m0.py added, src/m1.py added and 3 more");

  last = DescribeKeyParts(Parts(request_));
  TaskKeyRequest r = request_;
  r.input_json = "{}";
  EXPECT_EQ(ExplainMiss(last, Parts(r)), "input changed");
  r = request_;
  r.spec.env["MODE"] = "slow";
  EXPECT_EQ(ExplainMiss(last, Parts(r)), "env changed");
  r = request_;
  r.spec.args = {"-v"};
  EXPECT_EQ(ExplainMiss(last, Parts(r)), "definition changed");
  r = request_;
  r.dep_dirs.clear();
  EXPECT_EQ(ExplainMiss(last, Parts(r)), "files from dependencies changed");
}

TEST_F(TaskKeyTest, AnUnchangedTreeIsHashedFromTheMemo) {
  HashMemo::Options ahead;  // files just written count as old enough to trust (hash_memo.h)
  ahead.clock = [] { return int64_t{4'000'000'000'000'000'000}; };
  HashMemo memo(ahead);
  TaskKeyParts first, second;
  std::string err;
  ASSERT_TRUE(ComputeTaskKey(request_, &memo, &first, &err)) << err;
  ASSERT_TRUE(ComputeTaskKey(request_, &memo, &second, &err)) << err;
  EXPECT_EQ(first.sources.files_read, 2u);
  EXPECT_EQ(second.sources.files_read, 0u) << "the second key costs stats, not reads";
  EXPECT_EQ(CacheKey(first), CacheKey(second));
}

}  // namespace
}  // namespace chainctl::daemon
