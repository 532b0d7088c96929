// Golden tests of chain-file diagnostics: every NAME.yaml / NAME.json under
// tests/fixtures/invalid/ is loaded, and its diagnostics must be exactly the
// lines of NAME.err, as `chainctl validate` prints them but with the file
// named by its basename (and without the final "N errors" line).
//
// Messages that name an absolute path under the fixture folder (resolved
// executables) hold "$FIXTURE_DIR" in the .err file in place of that folder.
//
// Fixtures listed in tests/fixtures/invalid/KNOWN_WRONG.txt record the output
// the loader *should* give but does not yet; they are skipped with the reason
// given there, and fail once the loader gets them right, so that the entry is
// removed with the fix. Format of that file: one fixture file name per line,
// optionally followed by "# reason"; blank lines and lines starting with '#'
// are ignored.
//
// Also: every chain under examples/ loads without a diagnostic.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/chain/load.h"
#include "common/diagnostic.h"
#include "common/source_doc.h"
#include "tests/test_util.h"

namespace chainctl {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileOrDie;
using testing::SourcePath;

constexpr char kDirPlaceholder[] = "$FIXTURE_DIR";

std::string FixtureDir() { return SourcePath("tests/fixtures/invalid"); }

bool IsChainFileName(const fs::path& p) {
  return p.extension() == ".yaml" || p.extension() == ".json";
}

// File names (not paths) of the chain files in the fixture folder, sorted.
std::vector<std::string> ChainFileNames() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(FixtureDir(), ec)) {
    if (e.is_regular_file() && IsChainFileName(e.path())) {
      names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ErrPathFor(const std::string& name) {
  return (fs::path(FixtureDir()) / fs::path(name).replace_extension(".err")).string();
}

// The fixtures that the parameterized test runs: chain files with a .err.
std::vector<std::string> FixturesWithErr() {
  std::vector<std::string> out;
  for (const std::string& name : ChainFileNames()) {
    if (fs::exists(ErrPathFor(name))) out.push_back(name);
  }
  return out;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t at = s->find(from); at != std::string::npos; at = s->find(from, at + to.size())) {
    s->replace(at, from.size(), to);
  }
}

// fixture file name -> reason, from KNOWN_WRONG.txt.
std::map<std::string, std::string> KnownWrong() {
  std::map<std::string, std::string> out;
  std::string path = FixtureDir() + "/KNOWN_WRONG.txt";
  if (!fs::exists(path)) return out;
  for (std::string line : SplitLines(ReadFileOrDie(path))) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    std::string reason = "no reason given";
    if (size_t hash = line.find('#'); hash != std::string::npos) {
      size_t text = line.find_first_not_of(" \t", hash + 1);
      if (text != std::string::npos) reason = line.substr(text);
      line.erase(hash);
    }
    size_t end = line.find_last_not_of(" \t");
    out[line.substr(start, end - start + 1)] = reason;
  }
  return out;
}

// The diagnostics of loading fixture `name`, one formatted line each.
std::vector<std::string> ActualLines(const std::string& name) {
  const std::string dir = FixtureDir();
  Diagnostics diags;
  try {
    LoadChainFile(dir + "/" + name, LoadOptions{}, &diags);
  } catch (const std::exception& e) {
    return {"<exception thrown by LoadChainFile: " + std::string(e.what()) + ">"};
  }
  std::error_code ec;
  const std::string canonical = fs::weakly_canonical(dir, ec).string();
  std::vector<std::string> lines;
  for (Diagnostic d : diags) {
    d.file = fs::path(d.file).filename().string();
    std::string line = FormatDiagnostic(d);
    if (!ec) ReplaceAll(&line, canonical, kDirPlaceholder);
    ReplaceAll(&line, dir, kDirPlaceholder);
    lines.push_back(line);
  }
  return lines;
}

// A line diff (longest common subsequence): "  " same, "- " expected only,
// "+ " actual only.
std::string Diff(const std::vector<std::string>& expected, const std::vector<std::string>& actual) {
  const size_t n = expected.size(), m = actual.size();
  std::vector<std::vector<size_t>> lcs(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] =
          expected[i] == actual[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] == actual[j]) {
      out += "  " + expected[i++] + "\n";
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out += "- " + expected[i++] + "\n";
    } else {
      out += "+ " + actual[j++] + "\n";
    }
  }
  return out;
}

std::string TestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class InvalidChainFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidChainFixture, ReportsExactlyTheExpectedDiagnostics) {
  const std::string& name = GetParam();
  const std::vector<std::string> expected = SplitLines(ReadFileOrDie(ErrPathFor(name)));
  const std::vector<std::string> actual = ActualLines(name);
  const auto known_wrong = KnownWrong();
  auto wrong = known_wrong.find(name);
  if (wrong != known_wrong.end()) {
    if (actual == expected) {
      FAIL() << name << " now gives the expected output: remove it from "
             << "tests/fixtures/invalid/KNOWN_WRONG.txt";
    }
    GTEST_SKIP() << name << " is listed in KNOWN_WRONG.txt: " << wrong->second
                 << "\n(- expected, + actual)\n"
                 << Diff(expected, actual);
  }
  EXPECT_FALSE(expected.empty()) << name << ".err is empty: an invalid chain must give an error";
  EXPECT_EQ(actual, expected) << "diagnostics of " << name << " differ from "
                              << fs::path(ErrPathFor(name)).filename().string()
                              << " (- expected, + actual):\n"
                              << Diff(expected, actual);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InvalidChainFixture, ::testing::ValuesIn(FixturesWithErr()),
                         TestName);

TEST(InvalidChainFixtures, AreManyAndEachHasAnErrFile) {
  const std::vector<std::string> names = ChainFileNames();
  EXPECT_GE(names.size(), 40u) << "expected at least 40 fixtures in " << FixtureDir();
  std::set<std::string> stems;
  for (const std::string& name : names) {
    EXPECT_TRUE(fs::exists(ErrPathFor(name))) << name << " has no .err file";
    // NAME.yaml and NAME.json would share NAME.err.
    EXPECT_TRUE(stems.insert(fs::path(name).stem().string()).second)
        << "two fixtures named " << fs::path(name).stem() << ": their .err files would clash";
  }
  // No .err without its chain file.
  for (const fs::directory_entry& e : fs::directory_iterator(FixtureDir())) {
    if (e.path().extension() != ".err") continue;
    const fs::path base = e.path();
    bool paired = fs::exists(fs::path(base).replace_extension(".yaml")) ||
                  fs::exists(fs::path(base).replace_extension(".json"));
    EXPECT_TRUE(paired) << base.filename() << " has no .yaml or .json next to it";
  }
  // Every KNOWN_WRONG entry names a fixture.
  for (const auto& [name, reason] : KnownWrong()) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end())
        << "KNOWN_WRONG.txt names " << name << ", which is not a fixture";
  }
}

// True if `path` looks like a chain definition: a mapping with `tasks` at
// the top level (or, if it does not parse, text with a top-level `tasks`
// key, so that a broken example is not silently passed over).
bool IsChainFile(const std::string& path) {
  const std::string text = ReadFileOrDie(path);
  SourceDoc doc;
  doc.file = path;
  Diagnostics ignored;
  if (ParseSourceDoc(text, SourceFormat::kAuto, ParseLimits{}, &doc, &ignored)) {
    return doc.root.is_object() && doc.root.contains("tasks");
  }
  static const std::regex kTasksKey(R"((^|\n)(tasks|[ \t{]*"tasks")\s*:)");
  return std::regex_search(text, kTasksKey);
}

TEST(ExampleChains, LoadWithoutDiagnostics) {
  size_t chains = 0;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(SourcePath("examples"))) {
    if (!e.is_regular_file() || !IsChainFileName(e.path())) continue;
    const std::string path = e.path().string();
    if (!IsChainFile(path)) continue;
    ++chains;
    Diagnostics diags;
    std::optional<Chain> chain = LoadChainFile(path, LoadOptions{}, &diags);
    std::string printed;
    for (const Diagnostic& d : diags) printed += FormatDiagnostic(d) + "\n";
    EXPECT_TRUE(chain.has_value()) << path << " does not load";
    EXPECT_TRUE(diags.empty()) << path << ":\n" << printed;
  }
  EXPECT_GT(chains, 0u) << "no chain files found under examples/";
}

}  // namespace
}  // namespace chainctl
