#include "daemon/run/task_io.h"

#include <gtest/gtest.h>

#include <string>

#include "common/json_text.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

struct Parsed {
  bool ok;
  json output;
  std::string err;
};

Parsed Parse(std::string_view text, bool schema_free) {
  Parsed p{false, nullptr, ""};
  p.ok = ParseTaskOutput(text, schema_free, &p.output, &p.err);
  return p;
}

TEST(ParseTaskOutputTest, JsonIsTheOutput) {
  for (bool schema_free : {true, false}) {
    Parsed p = Parse("{\"rows\": 3}\n", schema_free);
    ASSERT_TRUE(p.ok) << p.err;
    EXPECT_EQ(p.output, json({{"rows", 3}}));
  }
}

TEST(ParseTaskOutputTest, TextWithoutASchemaIsStdout) {
  Parsed p = Parse("hello, caf\xC3\xA9\n", true);
  ASSERT_TRUE(p.ok) << p.err;
  EXPECT_EQ(p.output, json({{"stdout", "hello, caf\xC3\xA9\n"}}));
}

TEST(ParseTaskOutputTest, TextWithASchemaFails) {
  Parsed p = Parse("hello\nworld", false);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.err, "output_schema: the output is not JSON: \"hello\\nworld\"");
  EXPECT_EQ(Parse("", false).err,
            "output_schema: the task printed no output, and its output_schema wants JSON");
}

// Issue 15, item 1: `printf '\377'` killed chaind when its output was stored.
TEST(ParseTaskOutputTest, Issue15BytesThatAreNotUtf8FailTheTask) {
  for (bool schema_free : {true, false}) {
    Parsed p = Parse("\xFF", schema_free);
    EXPECT_FALSE(p.ok);
    EXPECT_EQ(p.err, "output is not valid UTF-8 at byte 1 (0xff)");
    // In a JSON string too (nlohmann refuses it, and it used to become {"stdout": ...}).
    p = Parse("{\"name\": \"ab\xFF\"}", schema_free);
    EXPECT_FALSE(p.ok);
    EXPECT_EQ(p.err, "output is not valid UTF-8 at byte 13 (0xff)");
  }
}

// Issue 15, item 2: 100,000 levels overflowed chaind's stack.
TEST(ParseTaskOutputTest, Issue15DeepJsonFailsTheTask) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (bool schema_free : {true, false}) {
    Parsed p = Parse(deep, schema_free);
    EXPECT_FALSE(p.ok);
    EXPECT_EQ(p.err, "output nests deeper than 64 levels");
  }
  std::string limit = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(Parse(limit, false).ok);
  // Not JSON however deep: text, as any other.
  Parsed p = Parse(std::string(1000, '[') + " not json", true);
  ASSERT_TRUE(p.ok) << p.err;
  EXPECT_TRUE(p.output.contains("stdout"));
}

}  // namespace
}  // namespace chainctl::daemon
