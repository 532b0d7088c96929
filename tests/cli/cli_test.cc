#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/app.h"
#include "tests/cli/run_chainctl.h"
#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

using chainctl::testing::ScopedTempDir;

class Cli : public ::testing::Test {
 protected:
  ScopedTempDir dir_;  // first: the files below are written into it
  std::string good_ = dir_.WriteFile("good.yaml", "tasks: [{task_id: a, command: x}]\n");
  std::string bad_ = dir_.WriteFile("bad.yaml",
                                    "tasks:\n"
                                    "  - task_id: a\n"
                                    "    command: x\n"
                                    "    dependencies: [lod]\n");
};

TEST_F(Cli, ValidateOkExitsZero) {
  Result r = RunChainctl({"validate", good_});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, good_ + ": ok (1 task)\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(Cli, ValidateErrorsExitTwoOnStderr) {
  Result r = RunChainctl({"validate", good_, bad_});
  EXPECT_EQ(r.status, kExitInvalid);
  EXPECT_EQ(r.out, good_ + ": ok (1 task)\n");
  EXPECT_EQ(r.err, bad_ + ":4:20: tasks[0].dependencies[0]: unknown task \"lod\"\n1 error\n");
}

TEST_F(Cli, ValidateJsonOutput) {
  Result r = RunChainctl({"validate", "-o", "json", good_, bad_});
  EXPECT_EQ(r.status, kExitInvalid);
  nlohmann::json errors = nlohmann::json::parse(r.out);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], (nlohmann::json{{"file", bad_},
                                       {"line", 4},
                                       {"column", 20},
                                       {"path", "tasks[0].dependencies[0]"},
                                       {"message", "unknown task \"lod\""}}));
  Result ok = RunChainctl({"validate", "-o", "json", good_});
  EXPECT_EQ(ok.status, 0);
  EXPECT_EQ(nlohmann::json::parse(ok.out), nlohmann::json::array());
}

TEST_F(Cli, GraphFormats) {
  Result text = RunChainctl({"graph", good_});
  EXPECT_EQ(text.status, 0);
  EXPECT_EQ(text.out, "good: 1 task, 1 root, 1 leaf\n* a\n(* critical path)\n");
  Result dot = RunChainctl({"graph", good_, "--format", "dot"});
  EXPECT_EQ(dot.status, 0);
  EXPECT_TRUE(dot.out.starts_with("digraph \"good\" {")) << dot.out;
  Result mermaid = RunChainctl({"graph", good_, "-f", "mermaid"});
  EXPECT_TRUE(mermaid.out.starts_with("flowchart LR\n")) << mermaid.out;
  Result bad = RunChainctl({"graph", bad_});
  EXPECT_EQ(bad.status, kExitInvalid);
  EXPECT_EQ(bad.out, "");
  EXPECT_NE(bad.err.find("unknown task \"lod\""), std::string::npos);
}

TEST_F(Cli, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{{},
                                                                {"frobnicate"},
                                                                {"validate"},
                                                                {"graph", "x", "--format", "svg"},
                                                                {"validate", "-o", "xml", "x"},
                                                                {"--bogus"}}) {
    Result r = RunChainctl(args);
    EXPECT_EQ(r.status, kExitInvalid) << ::testing::PrintToString(args);
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
  }
}

TEST_F(Cli, HelpAndVersion) {
  Result v = RunChainctl({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_TRUE(v.out.starts_with("chainctl ")) << v.out;
  for (const char* cmd : {"validate", "graph"}) {
    Result h = RunChainctl({cmd, "--help"});
    EXPECT_EQ(h.status, 0);
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("FILE"), std::string::npos) << h.out;
  }
  Result top = RunChainctl({"--help"});
  EXPECT_NE(top.out.find("validate"), std::string::npos);
  EXPECT_NE(top.out.find("graph"), std::string::npos);
}

}  // namespace
}  // namespace chainctl::cli
