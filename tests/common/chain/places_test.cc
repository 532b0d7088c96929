// Where a chain's tasks run (check_places.cc, DESIGN.md §3).
#include <gtest/gtest.h>

#include "common/chain/load.h"
#include "tests/test_util.h"

namespace chainctl {
namespace {

using testing::ScopedTempDir;

std::string Messages(const Diagnostics& diags) {
  std::string out;
  for (const Diagnostic& d : diags) out += FormatDiagnostic(d) + "\n";
  return out;
}

TEST(ChainPlacesTest, TasksRunInTheFilesFolderOrTheirWorkingDir) {
  ScopedTempDir dir;
  dir.WriteFile("proj/sub/.keep", "");
  dir.WriteFile("proj/lib/.keep", "");
  dir.WriteFile("proj/ci.env", "A=1\n");
  std::string path = dir.WriteFile("proj/chain.yaml", R"(
working_dir: lib
env_file: ci.env
tasks:
  - {task_id: a, command: "true"}
  - {task_id: b, command: "true", working_dir: ../proj/sub/}
  - {task_id: c, command: "true", working_dir: /tmp}
)");
  Diagnostics diags;
  std::optional<Chain> chain = LoadChainFile(path, {}, &diags);
  ASSERT_TRUE(chain) << Messages(diags);
  std::string proj = dir.path() + "/proj";
  EXPECT_EQ(chain->source_dir, proj);
  EXPECT_EQ(chain->tasks[0].cwd, proj + "/lib") << "the chain's working_dir";
  EXPECT_EQ(chain->tasks[1].cwd, proj + "/sub");
  EXPECT_EQ(chain->tasks[2].cwd, "/tmp");
  EXPECT_EQ(chain->tasks[1].source_dir, proj);
  // As sent to chaind and read back there: the same places.
  LoadOptions api;
  api.require_absolute_executables = true;
  std::optional<Chain> again = ParseChain(ChainToJson(*chain).dump(), "api", api, &diags);
  ASSERT_TRUE(again) << Messages(diags);
  EXPECT_EQ(again->tasks[1].cwd, proj + "/sub");
  EXPECT_EQ(again->env_file, "ci.env");
}

TEST(ChainPlacesTest, MissingFoldersAndFilesAreErrorsAtTheirLine) {
  ScopedTempDir dir;
  dir.WriteFile("proj/afile", "");
  std::string path = dir.WriteFile("proj/chain.yaml", R"(tasks:
  - task_id: a
    command: "true"
    working_dir: nowhere
  - task_id: b
    command: "true"
    working_dir: afile
env_file: missing.env
)");
  Diagnostics diags;
  EXPECT_FALSE(LoadChainFile(path, {}, &diags));
  std::string text = Messages(diags);
  EXPECT_NE(text.find(":4:18: tasks[0].working_dir: working_dir \"nowhere\" ("), std::string::npos)
      << text;
  EXPECT_NE(text.find("afile\" (" + dir.path() + "/proj/afile) is not a folder"), std::string::npos)
      << text;
  EXPECT_NE(text.find(":8:11: env_file: env_file \"missing.env\""), std::string::npos) << text;
}

TEST(ChainPlacesTest, TheApiNeedsAnAbsoluteSourceDirForRelativePlaces) {
  LoadOptions api;
  api.require_absolute_executables = true;
  Diagnostics diags;
  std::optional<Chain> plain =
      ParseChain(R"({"tasks": [{"task_id": "a", "command": "true"}]})", "api", api, &diags);
  ASSERT_TRUE(plain) << Messages(diags);
  EXPECT_EQ(plain->tasks[0].cwd, "") << "no source_dir: the run's $CHAIN_WORKDIR";
  EXPECT_FALSE(ParseChain(R"({"tasks": [{"task_id": "a", "command": "true", "working_dir": "x"}]})",
                          "api", api, &diags));
  EXPECT_NE(Messages(diags).find("has no source_dir"), std::string::npos) << Messages(diags);
  diags.clear();
  EXPECT_FALSE(
      ParseChain(R"({"source_dir": "rel", "tasks": [{"task_id": "a", "command": "true"}]})", "api",
                 api, &diags));
  EXPECT_NE(Messages(diags).find("must be an absolute path"), std::string::npos);
}

}  // namespace
}  // namespace chainctl
