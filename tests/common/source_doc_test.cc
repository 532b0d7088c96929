#include "common/source_doc.h"

#include <gtest/gtest.h>

#include <string>

namespace chainctl {
namespace {

struct Parsed {
  bool ok;
  SourceDoc doc;
  Diagnostics diags;
};

Parsed Parse(std::string_view text, SourceFormat format, ParseLimits limits = {}) {
  Parsed p;
  p.doc.file = "f";
  p.ok = ParseSourceDoc(text, format, limits, &p.doc, &p.diags);
  return p;
}

std::string OnlyError(const Parsed& p) {
  EXPECT_EQ(p.diags.size(), 1u);
  return p.diags.empty() ? "" : FormatDiagnostic(p.diags[0]);
}

TEST(SourceDoc, YamlPositionsOfValuesAndKeys) {
  Parsed p = Parse(
      "tasks:\n"
      "  - task_id: a\n"
      "    dependencies: [b, c]\n",
      SourceFormat::kYaml);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.doc.root["tasks"][0]["dependencies"][1], "c");
  SourcePos dep = p.doc.ValuePos("/tasks/0/dependencies/1");
  EXPECT_EQ(dep.line, 3);
  EXPECT_EQ(dep.column, 23);
  SourcePos key = p.doc.KeyPos("/tasks/0/dependencies");
  EXPECT_EQ(key.line, 3);
  EXPECT_EQ(key.column, 5);
  // Unknown pointers fall back to the nearest ancestor.
  SourcePos fallback = p.doc.ValuePos("/tasks/0/dependencies/7");
  EXPECT_EQ(fallback.line, 3);
  EXPECT_EQ(fallback.column, 19);
}

TEST(SourceDoc, JsonPositionsOfValuesAndKeys) {
  Parsed p = Parse("{\n  \"tasks\": [\n    {\"task_id\": \"a\", \"x\": [1, 2.5, null]}\n  ]\n}\n",
                   SourceFormat::kJson);
  ASSERT_TRUE(p.ok);
  SourcePos v = p.doc.ValuePos("/tasks/0/x/1");
  EXPECT_EQ(v.line, 3);
  EXPECT_EQ(v.column, 31);
  SourcePos k = p.doc.KeyPos("/tasks/0/x");
  EXPECT_EQ(k.line, 3);
  EXPECT_EQ(k.column, 22);
}

TEST(SourceDoc, ColumnsCountCharactersNotBytes) {
  Parsed p = Parse("{\"é€\": 1, \"b\": 2}", SourceFormat::kJson);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.doc.KeyPos("/b").column, 11);
}

TEST(SourceDoc, YamlCoreSchemaScalars) {
  Parsed p = Parse(
      "a: off\nb: yes\nc: true\nd: ~\ne: 012\nf: 0x1F\ng: 1.5e3\nh: '1'\ni: .inf\nj: 0o17\n"
      "k: 99999999999999999999\nl: -3\nm: !!str 5\nn:\n",
      SourceFormat::kYaml);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(OnlyError(p),
            "f:9:4: i: \".inf\" is not a finite number; chain files, like JSON, have no infinity "
            "or NaN");
  EXPECT_TRUE(p.doc.reported.contains("/i"));
  const nlohmann::json& r = p.doc.root;
  EXPECT_EQ(r["a"], "off");  // YAML 1.1 would say false
  EXPECT_EQ(r["b"], "yes");
  EXPECT_EQ(r["c"], true);
  EXPECT_TRUE(r["d"].is_null());
  EXPECT_EQ(r["e"], 12);
  EXPECT_EQ(r["f"], 31);
  EXPECT_EQ(r["g"], 1500.0);
  EXPECT_EQ(r["h"], "1");
  EXPECT_TRUE(r["i"].is_null());  // rejected: JSON has no infinity
  EXPECT_EQ(r["j"], 15);
  EXPECT_TRUE(r["k"].is_number_float());
  EXPECT_EQ(r["l"], -3);
  EXPECT_EQ(r["m"], "5");
  EXPECT_TRUE(r["n"].is_null());
  EXPECT_EQ(p.doc.ValuePos("/n").line, 14);  // an empty value sits at its key
}

TEST(SourceDoc, DuplicateKeysAreReportedAndLastWins) {
  Parsed y = Parse("a: 1\nb: 2\na: 3\n", SourceFormat::kYaml);
  EXPECT_TRUE(y.ok);
  EXPECT_EQ(OnlyError(y), "f:3:1: a: duplicate key \"a\" (first defined at line 1)");
  Parsed j = Parse("{\"a\": 1,\n \"a\": 3}", SourceFormat::kJson);
  EXPECT_TRUE(j.ok);
  EXPECT_EQ(OnlyError(j), "f:2:2: a: duplicate key \"a\" (first defined at line 1)");
  EXPECT_EQ(j.doc.root["a"], 3);
}

TEST(SourceDoc, EscapedJsonKeysAreDecoded) {
  Parsed p = Parse(R"({"a\/b": {"\u00e9": 1}, "a/b": 2})", SourceFormat::kJson);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(OnlyError(p), "f:1:25: a/b: duplicate key \"a/b\" (first defined at line 1)");
  EXPECT_EQ(p.doc.KeyPos("/a~1b/é").column, 11);
}

TEST(SourceDoc, SyntaxErrors) {
  EXPECT_EQ(OnlyError(Parse("{\"tasks\": [1,}", SourceFormat::kJson)),
            "f:1:14: invalid JSON: syntax error while parsing value - unexpected '}'; "
            "expected '[', '{', or a literal");
  // nlohmann throws out_of_range, not parse_error, for this (found by fuzzing).
  EXPECT_EQ(OnlyError(Parse("{\"a\": [1, 1e400]}", SourceFormat::kJson)),
            "f:1:11: invalid JSON: number 1e400 is out of range");
  EXPECT_EQ(OnlyError(Parse("a: [1, 2\n", SourceFormat::kYaml)),
            "f:2:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(OnlyError(Parse("a: 1\n---\nb: 2\n", SourceFormat::kYaml)),
            "f:2:1: the file holds more than one YAML document; a chain file holds one");
  // yaml-cpp's LoadAll loops forever on these; the parser must not.
  EXPECT_EQ(OnlyError(Parse("{a: 1},\n", SourceFormat::kYaml)),
            "f:1:7: unexpected text after the end of the document");
  EXPECT_EQ(OnlyError(Parse(",", SourceFormat::kYaml)),
            "f:1:1: unexpected text after the end of the document");
  EXPECT_EQ(OnlyError(Parse("a: !!int x\n", SourceFormat::kYaml)),
            "f:1:4: a: \"x\" is not a valid int");
  EXPECT_EQ(OnlyError(Parse("a: !custom x\n", SourceFormat::kYaml)),
            "f:1:4: a: unsupported YAML tag \"!custom\"");
  EXPECT_EQ(OnlyError(Parse("? [a]\n: 1\n", SourceFormat::kYaml)),
            "f:1:3: mapping keys must be plain strings");
}

// Malformed input of any kind: a clear error, never a crash or a hang.
TEST(SourceDoc, EmptyAndBlankFiles) {
  for (auto format : {SourceFormat::kYaml, SourceFormat::kJson, SourceFormat::kAuto}) {
    EXPECT_EQ(OnlyError(Parse("", format)),
              "f: empty file: expected a chain definition with 'tasks'");
    EXPECT_EQ(OnlyError(Parse(" \n\t\n", format)),
              "f: empty file: expected a chain definition with 'tasks'");
  }
  Parsed comments = Parse("# nothing but a comment\n", SourceFormat::kYaml);
  EXPECT_FALSE(comments.ok);
}

TEST(SourceDoc, BinaryJunkAndBadEncoding) {
  std::string junk = "tasks: []\n";
  junk += std::string("\x00\x01\x02", 3);
  EXPECT_EQ(OnlyError(Parse(junk, SourceFormat::kYaml)),
            "f:2:1: control character U+0000 in text; is this a binary file?");
  EXPECT_EQ(OnlyError(Parse("a: \"\xff\"\n", SourceFormat::kYaml)),
            "f:1:5: not valid UTF-8 (byte 0xFF); chain files must be UTF-8 text");
  EXPECT_FALSE(Parse("a: \xc0\xaf\n", SourceFormat::kYaml).ok);      // overlong '/'
  EXPECT_FALSE(Parse("a: \xed\xa0\x80\n", SourceFormat::kJson).ok);  // a surrogate
  EXPECT_FALSE(Parse("a: \xe2\x82\n", SourceFormat::kYaml).ok);      // truncated
  Parsed bom = Parse("\xEF\xBB\xBF{\"a\": 1}", SourceFormat::kJson);
  EXPECT_TRUE(bom.ok);
  EXPECT_EQ(bom.doc.KeyPos("/a").column, 2);
}

TEST(SourceDoc, SizeLimit) {
  ParseLimits limits;
  limits.max_bytes = 1000;
  std::string text = "a: \"" + std::string(2000, 'x') + "\"\n";
  EXPECT_EQ(OnlyError(Parse(text, SourceFormat::kYaml, limits)),
            "f: file is too large: the limit is 1000 bytes");
  std::string fifty_mb(50u << 20, ' ');
  EXPECT_EQ(OnlyError(Parse(fifty_mb, SourceFormat::kAuto)),
            "f: file is too large: the limit is 16Mi bytes");
}

TEST(SourceDoc, DeepNesting) {
  std::string deep_json = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_EQ(OnlyError(Parse(deep_json, SourceFormat::kJson)),
            "f:1:65: nesting deeper than 64 levels");
  std::string deep_object;
  for (int i = 0; i < 10000; ++i) deep_object += "{\"a\":";
  deep_object += "1" + std::string(10000, '}');
  EXPECT_FALSE(Parse(deep_object, SourceFormat::kJson).ok);
  std::string deep_flow = "a: " + std::string(10000, '[') + std::string(10000, ']') + "\n";
  Parsed flow = Parse(deep_flow, SourceFormat::kYaml);
  EXPECT_FALSE(flow.ok);
  EXPECT_NE(OnlyError(flow).find("nesting deeper than 64 levels"), std::string::npos);
  std::string deep_block;
  for (int i = 0; i < 1000; ++i) deep_block += std::string(static_cast<size_t>(i), ' ') + "a:\n";
  Parsed block = Parse(deep_block, SourceFormat::kYaml);
  EXPECT_FALSE(block.ok);
  EXPECT_NE(OnlyError(block).find("nesting deeper than 64 levels"), std::string::npos)
      << OnlyError(block);
}

TEST(SourceDoc, AliasBombIsStopped) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  Parsed p = Parse(bomb, SourceFormat::kYaml);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(OnlyError(p).find("YAML aliases expand to more than 100000 nodes"), std::string::npos);
  Parsed self = Parse("a: &a [*a]\n", SourceFormat::kYaml);
  EXPECT_FALSE(self.ok);
  EXPECT_NE(OnlyError(self).find("a YAML alias that refers to a node containing itself"),
            std::string::npos);
  // Ordinary aliases are fine.
  Parsed ok = Parse("base: &b {cpu: 1}\nx: *b\ny: *b\n", SourceFormat::kYaml);
  ASSERT_TRUE(ok.ok);
  EXPECT_EQ(ok.doc.root["y"]["cpu"], 1);
}

TEST(SourceDoc, DetectFormat) {
  EXPECT_EQ(DetectFormat("x.json", "a: 1"), SourceFormat::kJson);
  EXPECT_EQ(DetectFormat("x.yml", "{}"), SourceFormat::kYaml);
  EXPECT_EQ(DetectFormat("-", "  \n{\"a\": 1}"), SourceFormat::kJson);
  EXPECT_EQ(DetectFormat("-", "a: 1"), SourceFormat::kYaml);
}

}  // namespace
}  // namespace chainctl
