#include "cli/ci_report.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/app.h"
#include "common/json_text.h"
#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;
using namespace std::string_literals;

// A run of three tasks: a succeeded (cold, retried once), b failed, c upstream_failed.
RunFacts ThreeTasks() {
  RunFacts f;
  f.run = json::parse(R"({
    "run_id": "run-7", "chain_id": "ci", "chain_version": 2, "status": "failed",
    "error": "task b failed", "created_unix_ms": 1700000000000, "ended_unix_ms": 1700000002500,
    "tasks": [
      {"task_id": "a", "state": "succeeded", "attempts": 2,
       "started_unix_ms": 1700000000100, "ended_unix_ms": 1700000001100},
      {"task_id": "b", "state": "failed", "attempts": 1, "error": "exit 3",
       "started_unix_ms": 1700000001200, "ended_unix_ms": 1700000001450},
      {"task_id": "c", "state": "upstream_failed", "attempts": 0,
       "ended_unix_ms": 1700000001450}]})");
  f.records = json::parse(R"([
    {"task_id": "a", "attempt": 1, "status": "failed", "cold": true, "startup_ms": 40},
    {"task_id": "a", "attempt": 2, "status": "succeeded", "cold": false, "startup_ms": 2.5},
    {"task_id": "b", "attempt": 1, "status": "failed", "cold": true, "startup_ms": 30}])");
  f.logs["b"] = "compiling\nerror: it broke\n";
  return f;
}

// Whether `xml` holds only characters XML 1.0 allows (its well-formedness is the e2e test's,
// with a real parser).
bool OnlyXmlChars(const std::string& xml) {
  if (FindInvalidUtf8(xml)) return false;
  for (size_t i = 0; i < xml.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(xml[i]);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
    if (xml.compare(i, 3, "\xEF\xBF\xBE") == 0 || xml.compare(i, 3, "\xEF\xBF\xBF") == 0) {
      return false;
    }
  }
  return true;
}

TEST(CiReport, XmlEscapeMakesHostileBytesValidXml) {
  std::string hostile =
      "a<b>&\"'\x00\x01\x1b[31m\xff\xc3\x28\xEF\xBF\xBE\xEF\xBF\xBD\r\n\t\xC3\xA9"s;
  std::string escaped = XmlEscape(hostile);
  EXPECT_EQ(escaped,
            "a&lt;b&gt;&amp;&quot;&apos;\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD[31m"
            "\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD&#13;&#10;&#9;\xC3\xA9");
  EXPECT_TRUE(OnlyXmlChars(escaped));
  // In text, newline and tab stay as they are; a carriage return is still a reference.
  EXPECT_EQ(XmlEscape("x\r\n\ty", false), "x&#13;\n\ty");
}

TEST(CiReport, XmlEscapeKeepsEveryValidCharacter) {
  std::string text = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 \x7f z";  // é € 😀 DEL
  EXPECT_EQ(XmlEscape(text), text);
}

TEST(CiReport, CleanLogTextDropsControlsAndFixesUtf8) {
  EXPECT_EQ(CleanLogText("a\x00\r\n\x1b[1mb\x07\xff\tc"s), "a\n\x1b[1mb\xEF\xBF\xBD\tc");
}

TEST(CiReport, GithubEscaping) {
  EXPECT_EQ(GithubEscapeData("100% done\r\nnext: a,b"), "100%25 done%0D%0Anext: a,b");
  EXPECT_EQ(GithubEscapeProperty("C:\\x,y%\n"), "C%3A\\x%2Cy%25%0A");
}

TEST(CiReport, GithubErrorWithAndWithoutAPlace) {
  EXPECT_EQ(GithubError("ci/chain.yaml", 12, 0, "task b failed", "b: exit 3\nsee log"),
            "::error file=ci/chain.yaml,line=12,title=task b failed::b: exit 3%0Asee log");
  EXPECT_EQ(GithubError("a,b:c.yaml", 3, 7, "", "m"),
            "::error file=a%2Cb%3Ac.yaml,line=3,col=7::m");
  EXPECT_EQ(GithubError("", 12, 3, "t", "m"), "::error title=t::m");
  EXPECT_EQ(GithubError("f.yaml", 0, 0, "", "m"), "::error file=f.yaml::m");
}

TEST(CiReport, GithubDiagnosticHasItsPosition) {
  Diagnostic d{"chain.yaml", {4, 19}, "tasks[0].dependencies[0]", "unknown task lod"};
  EXPECT_EQ(GithubDiagnostic(d),
            "::error file=chain.yaml,line=4,col=19::tasks[0].dependencies[0]: unknown task lod");
  EXPECT_EQ(GithubDiagnostic({"-", {1, 1}, "", "not YAML"}), "::error::not YAML");
}

TEST(CiReport, JunitHasATestcasePerTaskAndTheFailure) {
  std::string xml = JunitXml(ThreeTasks());
  EXPECT_NE(xml.find("<testsuite name=\"ci\" tests=\"3\" failures=\"1\" errors=\"0\" "
                     "skipped=\"1\" time=\"2.500\" timestamp=\"2023-11-14T22:13:20\">"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<testcase classname=\"ci\" name=\"a\" time=\"1.000\"/>"), std::string::npos);
  EXPECT_NE(xml.find("<testcase classname=\"ci\" name=\"b\" time=\"0.250\">\n"
                     "      <failure message=\"exit 3\" type=\"failed\">compiling\n"
                     "error: it broke\n</failure>\n    </testcase>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<testcase classname=\"ci\" name=\"c\" time=\"0.000\">\n"
                     "      <skipped message=\"upstream_failed\"/>"),
            std::string::npos);
  EXPECT_NE(xml.find("<property name=\"run_id\" value=\"run-7\"/>"), std::string::npos);
  EXPECT_NE(xml.find("<property name=\"status\" value=\"failed\"/>"), std::string::npos);
}

TEST(CiReport, JunitOfAHostileLogAndErrorHasOnlyXmlCharacters) {
  RunFacts f = ThreeTasks();
  f.run["tasks"][1]["error"] = "exit 3: \"<]]>\x01\x02"s;
  f.logs["b"] = "\x00\x08]]></failure><x>\xfe\xff\xc0\xaf\r\n"s;
  std::string xml = JunitXml(f);
  EXPECT_TRUE(OnlyXmlChars(xml));
  EXPECT_EQ(xml.find("</failure><x>"), std::string::npos);
  EXPECT_NE(xml.find("message=\"exit 3: &quot;&lt;]]&gt;\xEF\xBF\xBD\xEF\xBF\xBD\""),
            std::string::npos);
}

TEST(CiReport, SummaryHasEveryTaskWithItsLastAttempt) {
  json s = SummaryJson(ThreeTasks());
  EXPECT_EQ(s["summary_version"], 1);
  EXPECT_EQ(s["run_id"], "run-7");
  EXPECT_EQ(s["status"], "failed");
  EXPECT_EQ(s["duration_s"], 2.5);
  ASSERT_EQ(s["tasks"].size(), 3u);
  const json& a = s["tasks"][0];
  EXPECT_EQ(a["attempts"], 2);
  EXPECT_EQ(a["cold"], false);  // the last attempt was warm
  EXPECT_EQ(a["startup_ms"], 2.5);
  EXPECT_EQ(a["duration_s"], 1.0);
  EXPECT_EQ(a["cached"], false);
  EXPECT_TRUE(a["error"].is_null());
  EXPECT_EQ(s["tasks"][1]["error"], "exit 3");
  EXPECT_EQ(s["tasks"][1]["cold"], true);
  const json& c = s["tasks"][2];
  EXPECT_EQ(c["state"], "upstream_failed");
  EXPECT_TRUE(c["cold"].is_null());
  EXPECT_TRUE(c["started_unix_ms"].is_null());
  EXPECT_TRUE(c["duration_s"].is_null());
}

TEST(CiReport, ACachedTaskPassesAndSaysSo) {
  RunFacts f = ThreeTasks();
  f.run["status"] = "succeeded";
  f.run["tasks"][0] = json::parse(R"({"task_id": "a", "state": "cached", "attempts": 0,
      "cache": {"hit": true, "key": "0123456789abcdef0123456789abcdef", "reason": "cached"}})");
  std::string xml = JunitXml(f);
  EXPECT_NE(
      xml.find("<testcase classname=\"ci\" name=\"a\" time=\"0.000\">\n"
               "      <system-out>cached (key 0123456789abcdef0123456789abcdef)</system-out>\n"
               "    </testcase>"),
      std::string::npos)
      << xml;
  EXPECT_NE(xml.find("failures=\"1\" errors=\"0\" skipped=\"1\""), std::string::npos) << xml;
  json s = SummaryJson(f);
  EXPECT_EQ(s["tasks"][0]["state"], "cached");
  EXPECT_EQ(s["tasks"][0]["cached"], true);
  EXPECT_EQ(s["tasks"][0]["cache"]["reason"], "cached");
  EXPECT_TRUE(s["tasks"][1]["cache"].is_null());  // caching off: no cache object
}

TEST(CiReport, GithubLogGroupsEachTaskAndAnnotatesTheFailure) {
  RunFacts f = ThreeTasks();
  f.chain_file = "ci/chain.yaml";
  f.lines = {{"a", 3}, {"b", 6}, {"c", 9}};
  f.logs["a"] = "::error::forged by a task\n";
  std::string log = CiLog(f, CiKind::kGithub, "tok123", 0);
  EXPECT_EQ(log,
            "::group::a (succeeded, 1.000s)\n::stop-commands::tok123\n::error::forged by a task\n"
            "::tok123::\n::endgroup::\n"
            "::group::b (failed, 0.250s)\n::stop-commands::tok123\ncompiling\nerror: it broke\n"
            "::tok123::\n::endgroup::\n"
            "::group::c (upstream_failed)\n::stop-commands::tok123\n::tok123::\n::endgroup::\n"
            "::error file=ci/chain.yaml,line=6,title=task b failed::task b failed: exit 3\n");
}

TEST(CiReport, GitlabLogUsesCollapsibleSections) {
  RunFacts f = ThreeTasks();
  f.chain_file = "chain.yaml";
  f.lines = {{"b", 6}};
  std::string log = CiLog(f, CiKind::kGitlab, "", 1700000003);
  EXPECT_NE(log.find("\x1b[0Ksection_start:1700000003:chainctl_task_a[collapsed=true]\r\x1b[0K"
                     "a (succeeded, 1.000s)\n\x1b[0Ksection_end:1700000003:chainctl_task_a\r"
                     "\x1b[0K\n"),
            std::string::npos);
  EXPECT_NE(log.find("section_start:1700000003:chainctl_task_b[collapsed=false]\r\x1b[0K"
                     "b (failed, 0.250s)\ncompiling\nerror: it broke\n\x1b[0Ksection_end:"),
            std::string::npos);
  EXPECT_NE(log.find("ERROR: chain.yaml:6: task b failed: exit 3\n"), std::string::npos);
}

TEST(CiReport, TaskLinesOfYamlAndJson) {
  std::string yaml =
      "chain_id: ci\n"
      "tasks:\n"
      "  - task_id: a\n"
      "    command: x\n"
      "  - command: y\n"
      "    task_id: b\n";
  EXPECT_EQ(TaskLines(yaml, "c.yaml"), (std::map<std::string, int>{{"a", 3}, {"b", 6}}));
  std::string text = "{\"tasks\": [\n {\"task_id\": \"a\"},\n\n {\"task_id\": \"b\"}]}";
  EXPECT_EQ(TaskLines(text, "c.json"), (std::map<std::string, int>{{"a", 2}, {"b", 4}}));
  EXPECT_TRUE(TaskLines("tasks: [", "c.yaml").empty());
}

// Sets GITHUB_ACTIONS for one test.
class CiReportUnderGithub : public ::testing::Test {
 protected:
  void SetUp() override { setenv("GITHUB_ACTIONS", "true", 1); }
  void TearDown() override { unsetenv("GITHUB_ACTIONS"); }
};

TEST_F(CiReportUnderGithub, ValidationErrorsAreAnnotations) {
  testing::ScopedTempDir dir;
  std::string bad = dir.WriteFile("bad.yaml",
                                  "tasks:\n"
                                  "  - task_id: a\n"
                                  "    command: x\n"
                                  "    dependencies: [lod]\n");
  EXPECT_EQ(DetectCi(), CiKind::kGithub);
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"chainctl", "validate", bad}, out, err), kExitInvalid);
  EXPECT_NE(err.str().find("::error file=" + GithubEscapeProperty(bad) +
                           ",line=4,col=20::tasks[0].dependencies[0]: "),
            std::string::npos)
      << err.str();
  std::ostringstream load_err;
  EXPECT_FALSE(LoadOrReport(bad, load_err));
  EXPECT_NE(load_err.str().find("::error file="), std::string::npos) << load_err.str();
}

TEST(CiReport, NoCiWithoutTheVariables) {
  unsetenv("GITHUB_ACTIONS");
  setenv("GITLAB_CI", "false", 1);
  EXPECT_EQ(DetectCi(), CiKind::kNone);
  setenv("GITLAB_CI", "true", 1);
  EXPECT_EQ(DetectCi(), CiKind::kGitlab);
  unsetenv("GITLAB_CI");
}

}  // namespace
}  // namespace chainctl::cli
