#include "common/yaml_util.h"

#include <gtest/gtest.h>

#include "common/source_doc.h"

namespace chainctl {
namespace {

nlohmann::json ReadBack(const std::string& yaml) {
  SourceDoc doc;
  doc.file = "y";
  Diagnostics diags;
  EXPECT_TRUE(ParseYamlDoc(yaml, {}, &doc, &diags)) << yaml;
  EXPECT_TRUE(diags.empty()) << FormatDiagnostic(diags.at(0));
  return doc.root;
}

TEST(YamlUtil, RoundTripsThroughTheReader) {
  nlohmann::json value = nlohmann::json::parse(R"({
    "strings": ["off", "yes", "1", "1.5", "", "null", "~", "true", "a: b", "- x", "#c", "é"],
    "numbers": [0, -3, 2.5, 18446744073709551615],
    "bools": [true, false], "nothing": null,
    "nested": {"list": [{"a": 1}, []], "empty": {}}})");
  EXPECT_EQ(ReadBack(JsonToYaml(value)), value) << JsonToYaml(value);
}

TEST(YamlUtil, PlainScalars) {
  EXPECT_EQ(ResolvePlainScalar("off"), "off");
  EXPECT_EQ(ResolvePlainScalar("TRUE"), true);
  EXPECT_EQ(ResolvePlainScalar("0x10"), 16);
  EXPECT_TRUE(ResolvePlainScalar("Null").is_null());
  EXPECT_EQ(ResolvePlainScalar("-2.5e1"), -25.0);
}

}  // namespace
}  // namespace chainctl
