#include "common/env_file.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

TEST(EnvFileTest, ReadsWhatDockerAndSystemdWrite) {
  EnvPairs pairs;
  std::string err;
  ASSERT_TRUE(
      ParseEnvText("# comment\n\nA=1\nexport B = two words \nC=\"q \\\"x\\\"\\n\"\n"
                   "D='$HOME \\n'\nE=\nA=again\r\n",
                   "f.env", &pairs, &err))
      << err;
  EnvPairs want = {{"A", "1"},         {"B", "two words"}, {"C", "q \"x\"\n"},
                   {"D", "$HOME \\n"}, {"E", ""},          {"A", "again"}};
  EXPECT_EQ(pairs, want);
}

TEST(EnvFileTest, ErrorsNameTheLineAndNeverTheValue) {
  EnvPairs pairs;
  std::string err;
  EXPECT_FALSE(ParseEnvText("A=1\nsecret-value-here\n", "f.env", &pairs, &err));
  EXPECT_EQ(err, "f.env:2: expected KEY=VALUE");
  EXPECT_FALSE(ParseEnvText("BAD-NAME=x\n", "f.env", &pairs, &err));
  EXPECT_EQ(err, "f.env:1: invalid variable name \"BAD-NAME\"");
  EXPECT_FALSE(ParseEnvText("K=\"hunter2\n", "f.env", &pairs, &err));
  EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
  EXPECT_NE(err.find("f.env:1:"), std::string::npos) << err;
}

TEST(EnvFileTest, Names) {
  EXPECT_TRUE(IsEnvName("_A1"));
  EXPECT_FALSE(IsEnvName("1A"));
  EXPECT_FALSE(IsEnvName(""));
  EXPECT_FALSE(IsEnvName("A.B"));
}

TEST(EnvFileTest, AMissingFileSaysSo) {
  EnvPairs pairs;
  std::string err;
  EXPECT_FALSE(ReadEnvFile("/nonexistent/x.env", &pairs, &err));
  EXPECT_NE(err.find("cannot read /nonexistent/x.env"), std::string::npos) << err;
}

}  // namespace
}  // namespace chainctl
