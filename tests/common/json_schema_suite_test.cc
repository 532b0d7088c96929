// Runs chainctl::JsonSchema (valijson) against the official JSON-Schema-Test-Suite for draft 7, as
// installed by the Debian package json-schema-test-suite, and pins down in
// json_schema_suite_skips.txt exactly which cases it gets wrong and why. The test fails on a
// failing case that is not listed and on a listed case that passes, so the list stays exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_schema.h"
#include "tests/test_util.h"

namespace chainctl {
namespace {

namespace fs = std::filesystem;

constexpr char kSuiteDir[] = "/usr/share/json-schema-test-suite/tests/draft7";
constexpr char kSkipList[] = "tests/common/json_schema_suite_skips.txt";
// Folders of kSuiteDir whose *.json files are run (not recursive).
constexpr const char* kSuiteFolders[] = {"", "optional", "optional/format"};

// One case of the suite and how the wrapper did on it.
struct SuiteCase {
  std::string file;          // relative to kSuiteDir, e.g. "optional/format/email.json"
  std::string group;         // the group's description, trimmed
  std::string test;          // the case's description, trimmed
  bool passed = false;       // Accepts() gives the suite's answer
  std::string why;           // for a failed case, what went wrong
  std::string disagreement;  // if Validate() and Accepts() disagree, how
};

// One line of the skip list: `FILE | GROUP | CASE | REASON`.
struct SkipEntry {
  int line = 0;
  std::string file, group, test, reason;
  int failures = 0;  // failed cases it covers
  int passes = 0;    // passing cases it covers (each one makes the entry stale)

  bool Matches(const SuiteCase& c) const {
    return file == c.file && (group == "*" || group == c.group) && (test == "*" || test == c.test);
  }
};

// `s` without leading and trailing blanks.
std::string Trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return "";
  const size_t end = s.find_last_not_of(" \t\r");
  return std::string(s.substr(begin, end - begin + 1));
}

// The skip-list line that would cover `c`, for pasting.
std::string SkipLine(const SuiteCase& c) { return c.file + " | " + c.group + " | " + c.test; }

// Parses the skip list (format documented at its top). Appends a message to *errors for every
// malformed line. Everything after the third "|" is the reason.
std::vector<SkipEntry> ParseSkipList(const std::string& text, std::vector<std::string>* errors) {
  std::vector<SkipEntry> entries;
  std::istringstream in(text);
  std::string raw;
  for (int line = 1; std::getline(in, raw); ++line) {
    const std::string content = Trim(raw);
    if (content.empty() || content.starts_with("#")) continue;
    std::vector<std::string> fields;
    for (size_t start = 0, bar;; start = bar + 1) {
      bar = fields.size() == 3 ? std::string::npos : content.find('|', start);
      fields.push_back(Trim(std::string_view(content).substr(start, bar - start)));
      if (bar == std::string::npos) break;
    }
    const std::string where = std::string(kSkipList) + ":" + std::to_string(line) + ": ";
    if (fields.size() != 4 || fields[3].empty() || fields[0].empty() || fields[1].empty() ||
        fields[2].empty()) {
      errors->push_back(where + "expected `FILE | GROUP | CASE | REASON`, got: " + content);
      continue;
    }
    SkipEntry entry;
    entry.line = line;
    entry.file = fields[0];
    entry.group = fields[1];
    entry.test = fields[2];
    entry.reason = fields[3];
    entries.push_back(std::move(entry));
  }
  return entries;
}

// The suite's test files, relative to kSuiteDir, sorted.
std::vector<std::string> SuiteFiles() {
  std::vector<std::string> files;
  for (const char* folder : kSuiteFolders) {
    for (const auto& entry : fs::directory_iterator(fs::path(kSuiteDir) / folder)) {
      if (entry.is_regular_file() && entry.path().extension() == ".json") {
        files.push_back(entry.path().lexically_relative(kSuiteDir).string());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Runs every case of one group and appends the results to *out. A schema that does not compile
// fails all of its cases.
void RunGroup(const std::string& file, const nlohmann::json& group, std::vector<SuiteCase>* out) {
  std::string err;
  const std::unique_ptr<JsonSchema> schema = JsonSchema::Compile(group.at("schema"), &err);
  for (const nlohmann::json& test : group.at("tests")) {
    SuiteCase c;
    c.file = file;
    c.group = Trim(group.at("description").get<std::string>());
    c.test = Trim(test.at("description").get<std::string>());
    const bool valid = test.at("valid").get<bool>();
    if (!schema) {
      c.why = "schema does not compile: " + err;
      out->push_back(std::move(c));
      continue;
    }
    const bool accepted = schema->Accepts(test.at("data"));
    const std::vector<JsonSchema::Violation> violations = schema->Validate(test.at("data"));
    if (violations.empty() != accepted) {
      c.disagreement = std::string("Accepts() is ") + (accepted ? "true" : "false") +
                       " but Validate() found " + std::to_string(violations.size()) + " violations";
    }
    c.passed = accepted == valid;
    if (!c.passed && valid) {
      c.why = "rejects a valid instance";
      if (!violations.empty()) {
        c.why += " (" + violations[0].pointer + ": " + violations[0].message + ")";
      }
    } else if (!c.passed) {
      c.why = "accepts an invalid instance";
    }
    out->push_back(std::move(c));
  }
}

// Every case of the suite, run once per process. Requires kSuiteDir to exist.
const std::vector<SuiteCase>& SuiteResults() {
  static const std::vector<SuiteCase> cases = [] {
    std::vector<SuiteCase> out;
    for (const std::string& file : SuiteFiles()) {
      const nlohmann::json groups =
          nlohmann::json::parse(testing::ReadFileOrDie((fs::path(kSuiteDir) / file).string()));
      for (const nlohmann::json& group : groups) RunGroup(file, group, &out);
    }
    return out;
  }();
  return cases;
}

// Success if the suite is installed; the failure says how to install it.
::testing::AssertionResult SuiteInstalled() {
  if (fs::is_directory(kSuiteDir)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << kSuiteDir << " does not exist: run scripts/install-deps (it installs the Debian "
         << "package json-schema-test-suite)";
}

// How the suite went, against the skip list.
struct Tally {
  int cases = 0, passed = 0, skipped = 0, unexpected = 0;
  std::map<std::string, int> skipped_per_file, skipped_per_reason;
};

// Counts `c` into *tally and into the entry of *skips that covers it (the first that matches).
// Adds a test failure if `c` fails uncovered or passes covered.
void TallyCase(const SuiteCase& c, std::vector<SkipEntry>* skips, Tally* tally) {
  ++tally->cases;
  if (c.passed) ++tally->passed;
  auto skip =
      std::find_if(skips->begin(), skips->end(), [&](const SkipEntry& s) { return s.Matches(c); });
  if (skip == skips->end()) {
    if (c.passed) return;
    ++tally->unexpected;
    ADD_FAILURE() << "unexpected failure (" << c.why << "); to skip, add to " << kSkipList
                  << ":\n  " << SkipLine(c) << " | REASON";
  } else if (c.passed) {
    ++skip->passes;
    ADD_FAILURE() << "stale skip (" << kSkipList << ":" << skip->line
                  << "), the case passes now:\n  " << SkipLine(c);
  } else {
    ++skip->failures;
    ++tally->skipped;
    ++tally->skipped_per_file[c.file];
    ++tally->skipped_per_reason[skip->reason];
  }
}

// Adds a test failure for every entry that covers no case: a typo, a case the suite renamed, or
// an earlier entry that covers the same cases.
void CheckAllEntriesUsed(const std::vector<SkipEntry>& skips) {
  for (const SkipEntry& s : skips) {
    if (s.failures + s.passes == 0) {
      ADD_FAILURE() << "stale skip (" << kSkipList << ":" << s.line
                    << "), covers no case of the suite: " << s.file << " | " << s.group << " | "
                    << s.test;
    }
  }
}

// Prints the summary line and the skipped counts per file and per reason to stdout.
void PrintTally(const Tally& tally) {
  std::cout << "JSON-Schema-Test-Suite draft7: " << tally.cases << " cases, " << tally.passed
            << " pass, " << tally.skipped << " skipped (listed with reasons)";
  if (tally.unexpected > 0) std::cout << ", " << tally.unexpected << " failing unexpectedly";
  std::cout << "\n";
  for (const auto& [file, count] : tally.skipped_per_file) {
    std::cout << "  skipped in " << file << ": " << count << "\n";
  }
  for (const auto& [reason, count] : tally.skipped_per_reason) {
    std::cout << "  skipped because " << reason << ": " << count << "\n";
  }
}

// Accepts() must give the suite's answer on every case, except exactly the cases that
// json_schema_suite_skips.txt lists.
TEST(JsonSchemaSuite, Draft7FailuresAreExactlyTheSkipList) {
  ASSERT_TRUE(SuiteInstalled());
  std::vector<std::string> errors;
  std::vector<SkipEntry> skips =
      ParseSkipList(testing::ReadFileOrDie(testing::SourcePath(kSkipList)), &errors);
  for (const std::string& e : errors) ADD_FAILURE() << e;
  Tally tally;
  for (const SuiteCase& c : SuiteResults()) TallyCase(c, &skips, &tally);
  CheckAllEntriesUsed(skips);
  PrintTally(tally);
}

// Validate() must find a violation exactly when Accepts() is false, on every case of the suite,
// including the skipped ones. Not skippable.
TEST(JsonSchemaSuite, Draft7ValidateAgreesWithAccepts) {
  ASSERT_TRUE(SuiteInstalled());
  for (const SuiteCase& c : SuiteResults()) {
    EXPECT_TRUE(c.disagreement.empty()) << SkipLine(c) << ": " << c.disagreement;
  }
}

TEST(JsonSchemaRemoteRef, Draft7MetaSchemaUriUsesEmbeddedCopy) {
  std::string err;
  const auto schema = JsonSchema::Compile(
      nlohmann::json::parse(R"({"$ref": "http://json-schema.org/draft-07/schema#"})"), &err);
  ASSERT_NE(schema, nullptr) << err;
  EXPECT_TRUE(schema->Accepts(nlohmann::json::parse(R"({"type": "object"})")));
  EXPECT_TRUE(schema->Validate(nlohmann::json::parse(R"({"type": "object"})")).empty());
  EXPECT_FALSE(schema->Accepts(nlohmann::json::parse(R"({"type": 5})")));
  EXPECT_FALSE(schema->Validate(nlohmann::json::parse(R"({"type": 5})")).empty());
}

TEST(JsonSchemaRemoteRef, OtherUriFailsToCompileNamingIt) {
  std::string err;
  const auto schema = JsonSchema::Compile(
      nlohmann::json::parse(R"({"properties": {"a": {"$ref": "http://example.com/a.json#/x"}}})"),
      &err);
  EXPECT_EQ(schema, nullptr);
  EXPECT_NE(err.find("http://example.com/a.json"), std::string::npos) << err;
}

}  // namespace
}  // namespace chainctl
