#include "common/chain/condition.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

using nlohmann::json;

const json kContext = {{"trigger", {{"date", "2026-11-24"}, {"n", 3}}},
                       {"router", {{"branch", "b"}, {"score", 0.7}, {"tags", {"x"}}}}};

bool Holds(const std::string& path, ConditionOp op, json value = nullptr,
           std::string* why = nullptr) {
  std::string ignored;
  return ConditionHolds({path, op, std::move(value)}, kContext, why ? why : &ignored);
}

TEST(Condition, Equality) {
  EXPECT_TRUE(Holds("/router/branch", ConditionOp::kEq, "b"));
  EXPECT_FALSE(Holds("/router/branch", ConditionOp::kEq, "a"));
  EXPECT_TRUE(Holds("/router/branch", ConditionOp::kNe, "a"));
  EXPECT_TRUE(Holds("/trigger/n", ConditionOp::kEq, 3.0)) << "numbers compare by value";
  EXPECT_FALSE(Holds("/router/missing", ConditionOp::kNe, "a")) << "nothing is not unequal";
}

TEST(Condition, Ordering) {
  EXPECT_TRUE(Holds("/trigger/n", ConditionOp::kGt, 2));
  EXPECT_FALSE(Holds("/trigger/n", ConditionOp::kGt, 3));
  EXPECT_TRUE(Holds("/trigger/n", ConditionOp::kGe, 3));
  EXPECT_TRUE(Holds("/router/score", ConditionOp::kLt, 1));
  EXPECT_TRUE(Holds("/router/score", ConditionOp::kLe, 0.7));
  EXPECT_TRUE(Holds("/trigger/date", ConditionOp::kGt, "2026-01-01")) << "strings compare too";
  EXPECT_FALSE(Holds("/trigger/date", ConditionOp::kGt, 1)) << "a string and a number do not";
}

TEST(Condition, InExistsMatches) {
  EXPECT_TRUE(Holds("/router/branch", ConditionOp::kIn, {"a", "b"}));
  EXPECT_FALSE(Holds("/router/branch", ConditionOp::kIn, {"a", "c"}));
  EXPECT_TRUE(Holds("/router/tags", ConditionOp::kExists));
  EXPECT_FALSE(Holds("/router/nope", ConditionOp::kExists));
  EXPECT_TRUE(Holds("/router/nope", ConditionOp::kNotExists));
  EXPECT_TRUE(Holds("/trigger/date", ConditionOp::kMatches, "^2026-"));
  EXPECT_FALSE(Holds("/trigger/n", ConditionOp::kMatches, "3")) << "only strings match";
}

TEST(Condition, WhyItIsFalse) {
  std::string why;
  EXPECT_FALSE(Holds("/router/branch", ConditionOp::kEq, "a", &why));
  EXPECT_EQ(why, "/router/branch is \"b\", not eq \"a\"");
  EXPECT_FALSE(Holds("/router/x", ConditionOp::kExists, nullptr, &why));
  EXPECT_EQ(why, "/router/x selects nothing, not exists");
}

TEST(Condition, AllMustHold) {
  std::string why;
  EXPECT_TRUE(ConditionsHold({}, kContext, &why));
  EXPECT_FALSE(ConditionsHold(
      {{"/trigger/n", ConditionOp::kGt, 1}, {"/router/branch", ConditionOp::kEq, "a"}}, kContext,
      &why));
  EXPECT_NE(why.find("/router/branch"), std::string::npos);
}

}  // namespace
}  // namespace chainctl
