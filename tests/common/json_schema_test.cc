#include "common/json_schema.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

using nlohmann::json;

std::unique_ptr<JsonSchema> CompileOrDie(const json& schema) {
  std::string err;
  auto compiled = JsonSchema::Compile(schema, &err);
  EXPECT_TRUE(compiled) << err;
  return compiled;
}

std::string CompileError(const json& schema) {
  std::string err;
  EXPECT_FALSE(JsonSchema::Compile(schema, &err));
  return err;
}

TEST(JsonSchema, MessagesNameTheProblem) {
  auto schema = CompileOrDie(json::parse(R"({
    "type": "object", "required": ["n"],
    "properties": {
      "n": {"type": "integer", "minimum": 0, "maximum": 9},
      "mode": {"enum": ["a", "b"]},
      "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
      "name": {"type": "string", "pattern": "^x", "x-expected": "a name starting with x"}
    }})"));
  auto v = schema->Validate(json::parse(R"({"mode": "c", "tags": ["p", 1, "p"], "name": "y"})"));
  std::vector<std::string> got;
  for (const auto& violation : v) got.push_back(violation.pointer + ": " + violation.message);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "/mode: must be one of: a, b (got \"c\")",
                     "/name: expected a name starting with x, got \"y\"",
                     "/tags/1: expected string, got integer",
                     "/tags/2: duplicate entry \"p\" (also at index 0)",
                     ": missing required field \"n\"",
                 }));
  auto range = schema->Validate(json{{"n", 12}});
  ASSERT_EQ(range.size(), 1u);
  EXPECT_EQ(range[0].message, "must be between 0 and 9, got 12");
  EXPECT_TRUE(schema->Validate(json{{"n", 3}}).empty());
  EXPECT_TRUE(schema->Accepts(json{{"n", 3}}));
  EXPECT_FALSE(schema->Accepts(json{{"n", 12}}));
}

// Regression found by fuzzing: cutting a long value inside a UTF-8 sequence
// made the message invalid UTF-8, and dumping it as JSON threw.
TEST(JsonSchema, LongValuesAreCutBetweenCharacters) {
  auto schema = CompileOrDie(json::parse(R"({"type": "string", "pattern": "^x"})"));
  std::string value;
  for (int i = 0; i < 30; ++i) value += "\u00e9\u20ac";  // 2- and 3-byte characters
  auto v = schema->Validate(json(value));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NO_THROW(json(v[0].message).dump());
  EXPECT_TRUE(v[0].message.ends_with("...\" (60 characters)")) << v[0].message;
}

TEST(JsonSchema, FalseSchemaSaysSo) {
  auto schema = CompileOrDie(json::parse(R"({"properties": {"x": false}})"));
  auto v = schema->Validate(json{{"x", 1}});
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].pointer, "/x");
  EXPECT_EQ(v[0].message, "is not allowed by the schema");
  auto nested = CompileOrDie(json::parse(R"({"items": {"items": false}})"));
  auto nv = nested->Validate(json::parse("[[1]]"));
  ASSERT_EQ(nv.size(), 1u);
  EXPECT_EQ(nv[0].pointer, "/0/0");
}

TEST(JsonSchema, FragmentAtFollowsPropertiesItemsAndRefs) {
  auto schema = CompileOrDie(json::parse(R"({
    "definitions": {"item": {"type": "object", "properties": {"id": {"type": "string"}}}},
    "properties": {"list": {"type": "array", "items": {"$ref": "#/definitions/item"}},
                   "map": {"additionalProperties": {"type": "number"}}}})"));
  const json* id = schema->FragmentAt("/list/3/id");
  ASSERT_TRUE(id);
  EXPECT_EQ((*id)["type"], "string");
  const json* any = schema->FragmentAt("/map/whatever");
  ASSERT_TRUE(any);
  EXPECT_EQ((*any)["type"], "number");
  EXPECT_FALSE(schema->FragmentAt("/nope"));
}

// Regressions found by fuzzing: valijson 1.0 recursed without end on these.
TEST(JsonSchema, RefsAreCheckedBeforeValijsonSeesThem) {
  EXPECT_EQ(CompileError(json{{"$ref", "https:@/example.org/s.json"}}),
            "remote $ref \"https:@/example.org/s.json\" is not supported; use local references "
            "(\"#/definitions/...\")");
  EXPECT_EQ(CompileError(json::parse(R"({"$ref": "#/definitions/a", "definitions": {
                "a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}})")),
            "$ref \"#/definitions/a\" is part of a cycle of references");
  EXPECT_EQ(CompileError(json{{"$ref", "#/definitions/nope"}}),
            "$ref \"#/definitions/nope\" does not point into this schema");
  // Recursion through a keyword is fine, and so is the meta-schema.
  auto tree = CompileOrDie(json::parse(
      R"({"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}})"));
  EXPECT_TRUE(tree->Accepts(json::parse(R"({"children": [{"children": []}]})")));
  EXPECT_FALSE(tree->Accepts(json::parse(R"({"children": [{"children": 5}]})")));
  auto meta = CompileOrDie(json{{"$ref", "http://json-schema.org/draft-07/schema#"}});
  EXPECT_TRUE(meta->Accepts(json{{"type", "object"}}));
  EXPECT_FALSE(meta->Accepts(json{{"type", 5}}));
  // "$ref" as data (enum, const, default) is not a reference.
  CompileOrDie(json::parse(R"({"enum": [{"$ref": "http://x"}], "default": {"$ref": 1}})"));
}

TEST(JsonSchema, CheckSchemaDocument) {
  EXPECT_TRUE(CheckSchemaDocument(json{{"type", "string"}}).empty());
  EXPECT_TRUE(CheckSchemaDocument(true).empty());
  EXPECT_FALSE(CheckSchemaDocument(json{{"type", "strnig"}}).empty());
  EXPECT_FALSE(CheckSchemaDocument(json{{"required", 5}}).empty());
  auto bad_regex = CheckSchemaDocument(json{{"pattern", "(("}});
  ASSERT_EQ(bad_regex.size(), 1u);
  EXPECT_EQ(bad_regex[0].pointer, "/pattern");
  EXPECT_TRUE(bad_regex[0].message.starts_with("invalid regular expression \"((\""));
}

}  // namespace
}  // namespace chainctl
