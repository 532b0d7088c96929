#include "common/json_text.h"

#include <gtest/gtest.h>

#include <string>

namespace chainctl {
namespace {

using nlohmann::json;

std::string Nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(FindInvalidUtf8Test, AcceptsWellFormedText) {
  EXPECT_EQ(FindInvalidUtf8(""), std::nullopt);
  EXPECT_EQ(FindInvalidUtf8("plain ascii\n\t"), std::nullopt);
  // 2, 3 and 4 bytes: é, €, U+10FFFF (the highest code point).
  EXPECT_EQ(FindInvalidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF4\x8F\xBF\xBF"), std::nullopt);
}

TEST(FindInvalidUtf8Test, FindsTheFirstBadByte) {
  EXPECT_EQ(FindInvalidUtf8("\xFF"), 0u);
  EXPECT_EQ(FindInvalidUtf8("ab\xFF"
                            "cd\xFE"),
            2u);
  EXPECT_EQ(FindInvalidUtf8("a\x80"), 1u);             // a continuation byte alone
  EXPECT_EQ(FindInvalidUtf8("\xC0\x80"), 0u);          // overlong NUL
  EXPECT_EQ(FindInvalidUtf8("\xE0\x80\xAF"), 0u);      // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("x\xED\xA0\x80"), 1u);     // a surrogate (U+D800)
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ok\xE2\x82"), 2u);        // cut short at the end
  EXPECT_EQ(FindInvalidUtf8("\xE2\x82z"), 0u);         // cut short by an ASCII byte
}

TEST(JsonNestingDepthTest, CountsContainersNotBracketsInStrings) {
  EXPECT_EQ(JsonNestingDepth("1"), 0u);
  EXPECT_EQ(JsonNestingDepth("[]"), 1u);
  EXPECT_EQ(JsonNestingDepth("{\"a\": [1, {\"b\": []}], \"c\": {}}"), 4u);
  EXPECT_EQ(JsonNestingDepth("[\"[[[[\", \"\\\"[[[\"]"), 1u);  // brackets in strings
  EXPECT_EQ(JsonNestingDepth(Nested(100000)), 100000u);
}

TEST(PrintableBytesTest, EscapesWhatIsNotPrintableUtf8) {
  EXPECT_EQ(PrintableBytes("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(PrintableBytes("a\xFF"
                           "b\n\t\x01"),
            "a\\xffb\\n\\t\\x01");
  EXPECT_EQ(PrintableBytes("abcdef", 3), "abc...");
  EXPECT_EQ(PrintableBytes("ab\xE2\x82\xAC", 3), "ab...");  // never half a character
  EXPECT_EQ(FindInvalidUtf8(PrintableBytes("\xC0\x80\xED\xA0\x80\xFF")), std::nullopt);
}

TEST(DecodeJsonTextTest, DecodesJson) {
  json value;
  JsonTextFault fault;
  std::string err;
  ASSERT_TRUE(DecodeJsonText("{\"a\": [1, \"\xC3\xA9\"]}", &value, &fault, &err)) << err;
  EXPECT_EQ(value, json({{"a", {1, "\xC3\xA9"}}}));
  EXPECT_EQ(fault, JsonTextFault::kNone);
  ASSERT_TRUE(DecodeJsonText(Nested(kMaxJsonDepth), &value, &fault, &err)) << err;
}

TEST(DecodeJsonTextTest, RefusesBytesThatAreNotUtf8) {
  json value = 7;
  JsonTextFault fault;
  std::string err;
  EXPECT_FALSE(DecodeJsonText("\"ab\xFF\"", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotUtf8);
  EXPECT_EQ(err, "not valid UTF-8 at byte 4 (0xff)");
  EXPECT_EQ(value, 7);  // untouched
  // Before the depth: not UTF-8 is said first.
  EXPECT_FALSE(DecodeJsonText(Nested(100) + "\xFF", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotUtf8);
}

TEST(DecodeJsonTextTest, RefusesJsonDeeperThanTheLimit) {
  json value;
  JsonTextFault fault;
  std::string err;
  EXPECT_FALSE(DecodeJsonText(Nested(kMaxJsonDepth + 1), &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kTooDeep);
  EXPECT_EQ(err, "nests deeper than 64 levels");
  // Issue 15: 100,000 levels overflowed the stack once they were a json value.
  EXPECT_FALSE(DecodeJsonText(Nested(100000), &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kTooDeep);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  EXPECT_FALSE(DecodeJsonText(objects, &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kTooDeep);
}

TEST(DecodeJsonTextTest, DeepTextThatIsNotJsonIsNotJson) {
  json value;
  JsonTextFault fault;
  std::string err;
  EXPECT_FALSE(DecodeJsonText(std::string(100000, '[') + "x", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotJson);
  EXPECT_EQ(err.substr(0, 23), "not JSON (byte 100001):");
}

TEST(DecodeJsonTextTest, NotJsonGivesNlohmannsReasonWithoutThrowing) {
  json value;
  JsonTextFault fault;
  std::string err;
  EXPECT_FALSE(DecodeJsonText("{\"a\": tru}", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotJson);
  EXPECT_EQ(err.substr(0, 58), "not JSON (byte 10): syntax error while parsing value - inv");
  // nlohmann throws out_of_range (not parse_error) for this one when exceptions are on.
  EXPECT_FALSE(DecodeJsonText("[1e400]", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotJson);
  EXPECT_NE(err.find("number overflow"), std::string::npos) << err;
  EXPECT_FALSE(DecodeJsonText("", &value, &fault, &err));
  EXPECT_EQ(fault, JsonTextFault::kNotJson);
}

}  // namespace
}  // namespace chainctl
