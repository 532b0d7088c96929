// GitHub Actions' step files (ci_github.cc).
#include <gtest/gtest.h>

#include "cli/ci_report.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

json Summary() {
  return json::parse(R"({"run_id": "run-7", "chain_id": "ci", "status": "failed",
    "error": "task test failed: exit 3",
    "tasks": [{"task_id": "build", "state": "succeeded", "attempts": 1, "duration_s": 1.25,
               "cold": false},
              {"task_id": "te|st", "state": "failed", "attempts": 2, "duration_s": null,
               "cold": null}]})");
}

TEST(CiGithubTest, TheStepsOutputsAreTheRunIdAndStatus) {
  EXPECT_EQ(GithubOutputs(Summary()), "run_id=run-7\nstatus=failed\n");
}

TEST(CiGithubTest, TheJobSummaryIsATableOfTheTasks) {
  std::string md = GithubStepSummary(Summary());
  EXPECT_NE(md.find("### chainctl: ci run-7 failed\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| build | succeeded | 1 | 1.25s | warm |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| te\\|st | failed | 2 |  |  |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("task test failed: exit 3"), std::string::npos) << md;
}

}  // namespace
}  // namespace chainctl::cli
