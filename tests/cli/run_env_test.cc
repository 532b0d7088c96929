// The caller's environment and the selection of tasks of `chainctl run` (run_env.h).
#include "cli/run_env.h"

#include <gtest/gtest.h>

#include "common/chain/load.h"
#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

TEST(RunEnvTest, PassEnvThenFilesThenEnvTheLaterWins) {
  testing::ScopedTempDir dir;
  std::string file = dir.WriteFile("a.env", "CI_JOB=from-file\nFILE_ONLY=1\n");
  ::setenv("CHAINCTL_TEST_OWN", "own", 1);
  std::string e1 = "CI_JOB=own", e2 = "CI_REF=main", e3 = "OTHER=x", e4 = "CHAIN_X=no";
  char* environ[] = {e1.data(), e2.data(), e3.data(), e4.data(), nullptr};
  RunOptions options;
  options.pass_env = {"CI_*", "CHAIN_*"};
  options.env_files = {file};
  options.env = {"CI_REF=flag", "CHAINCTL_TEST_OWN"};
  nlohmann::json env;
  std::string err;
  ASSERT_TRUE(CallerEnv(options, environ, &env, &err)) << err;
  EXPECT_EQ(env, (nlohmann::json{{"CI_JOB", "from-file"},
                                 {"CI_REF", "flag"},
                                 {"FILE_ONLY", "1"},
                                 {"CHAINCTL_TEST_OWN", "own"}}));
}

TEST(RunEnvTest, MistakesAreErrorsWithoutValues) {
  char* environ[] = {nullptr};
  nlohmann::json env;
  std::string err;
  RunOptions bad_name;
  bad_name.env = {"A-B=hunter2"};
  EXPECT_FALSE(CallerEnv(bad_name, environ, &env, &err));
  EXPECT_EQ(err, "--env: invalid variable name \"A-B\" ([A-Za-z_][A-Za-z0-9_]*)");
  RunOptions reserved;
  reserved.env = {"CHAIN_RUN_ID=1"};
  EXPECT_FALSE(CallerEnv(reserved, environ, &env, &err));
  EXPECT_NE(err.find("CHAIN_* variables are set by chaind"), std::string::npos);
  RunOptions unset;
  unset.pass_env = {"CHAINCTL_TEST_SURELY_UNSET"};
  EXPECT_FALSE(CallerEnv(unset, environ, &env, &err));
  EXPECT_NE(err.find("chainctl has no such variable"), std::string::npos);
}

TEST(RunEnvTest, SelectedTasksAreTheTargetsAndTheirDependenciesInOrder) {
  Diagnostics diags;
  LoadOptions options;
  options.check_executables = false;
  std::optional<Chain> chain = ParseChain(R"(tasks:
  - {task_id: t1, command: "true"}
  - {task_id: t2, command: "true", dependencies: [t1]}
  - {task_id: other, command: "true"}
  - {task_id: t3, command: "true", dependencies: [t2]}
  - {task_id: t4, command: "true", dependencies: [t3]}
)",
                                          "c.yaml", options, &diags);
  ASSERT_TRUE(chain);
  std::vector<int> order;
  std::string err;
  ASSERT_TRUE(SelectedTasks(*chain, {"t3"}, &order, &err)) << err;
  EXPECT_EQ(order, (std::vector<int>{0, 1, 3}));
  ASSERT_TRUE(SelectedTasks(*chain, {}, &order, &err));
  EXPECT_EQ(order.size(), 5u);
  EXPECT_FALSE(SelectedTasks(*chain, {"t9"}, &order, &err));
  EXPECT_EQ(err, "no task \"t9\" in chain (unnamed)");
}

}  // namespace
}  // namespace chainctl::cli
