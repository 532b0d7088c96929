#include "common/json_pointer.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

TEST(JsonPointer, SplitsAndUnescapes) {
  std::string err;
  EXPECT_EQ(SplitJsonPointer("", &err), std::vector<std::string>{});
  EXPECT_EQ(SplitJsonPointer("/a/b", &err), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SplitJsonPointer("/a~1b/c~0d", &err), (std::vector<std::string>{"a/b", "c~d"}));
  EXPECT_EQ(SplitJsonPointer("/", &err), std::vector<std::string>{""});
  EXPECT_EQ(SplitJsonPointer("/a//b", &err), (std::vector<std::string>{"a", "", "b"}));
}

TEST(JsonPointer, RejectsInvalid) {
  std::string err;
  EXPECT_FALSE(SplitJsonPointer("a/b", &err));
  EXPECT_EQ(err, "a JSON Pointer must be empty or start with '/'");
  EXPECT_FALSE(SplitJsonPointer("/a~2", &err));
  EXPECT_FALSE(SplitJsonPointer("/a~", &err));
  EXPECT_EQ(err, "'~' in a JSON Pointer must be followed by 0 or 1");
}

TEST(JsonPointer, EscapeRoundTrips) {
  std::string err;
  std::string token = "x/~y";
  EXPECT_EQ(EscapePointerToken(token), "x~1~0y");
  EXPECT_EQ(SplitJsonPointer("/" + EscapePointerToken(token), &err),
            std::vector<std::string>{token});
}

TEST(JsonPointer, FieldPaths) {
  EXPECT_EQ(PointerToFieldPath(""), "");
  EXPECT_EQ(PointerToFieldPath("/tasks/2/dependencies/0"), "tasks[2].dependencies[0]");
  EXPECT_EQ(PointerToFieldPath("/tasks/0/input_map/a~1b"), "tasks[0].input_map.a/b");
  EXPECT_EQ(PointerToFieldPath("/3"), "[3]");
}

TEST(JsonPointer, PercentDecode) {
  std::string out;
  EXPECT_TRUE(PercentDecode("a%2Fb%25c%7e", &out));
  EXPECT_EQ(out, "a/b%c~");
  EXPECT_TRUE(PercentDecode("", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(PercentDecode("a%2", &out));
  EXPECT_FALSE(PercentDecode("%zz", &out));
  EXPECT_FALSE(PercentDecode("%", &out));
}

}  // namespace
}  // namespace chainctl
