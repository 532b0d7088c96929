// A task's cache fields in chain files (DESIGN.md §2, §4 "Cache"): `sources`, `outputs` and
// `cache`, decoded, checked by the glob grammar of common/source_glob.h and written back.
#include <gtest/gtest.h>

#include "common/chain/load.h"
#include "common/source_glob.h"
#include "tests/test_util.h"

namespace chainctl {
namespace {

std::vector<std::string> Messages(const Diagnostics& diags) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diags) out.push_back(FormatDiagnostic(d));
  return out;
}

std::optional<Chain> Parse(const std::string& text, const std::string& name, Diagnostics* diags) {
  return ParseChain(text, name, {}, diags);
}

TEST(TaskCacheFields, CachedFollowsSourcesUnlessCacheIsWritten) {
  TaskSpec t;
  EXPECT_FALSE(t.Cached());  // undeclared inputs: not cached
  t.sources = {"src/*.py"};
  EXPECT_TRUE(t.Cached());
  t.cache = false;
  EXPECT_FALSE(t.Cached());
  t.sources.clear();
  t.cache = true;
  EXPECT_TRUE(t.Cached());  // the user asserts it depends on its input only
}

TEST(TaskCacheFields, DecodesEveryFormOfTheFields) {
  Diagnostics diags;
  auto chain = Parse(R"(
tasks:
  - {task_id: a, command: x, cache: on, sources: ["src/**/*.py", Makefile], outputs: [o.html]}
  - {task_id: b, command: x, sources: [a.txt], cache: off}
  - {task_id: c, command: x, cache: true}
  - {task_id: d, command: x, cache: false, outputs: [out/*]}
  - {task_id: e, command: x}
  - {task_id: f, command: x, sources: ["./a//b"]}
  - {task_id: g, command: x, cache: "on"}
)",
                     "c.yaml", &diags);
  ASSERT_TRUE(chain) << Messages(diags)[0];
  const auto& t = chain->tasks;
  EXPECT_EQ(t[0].sources, (std::vector<std::string>{"src/**/*.py", "Makefile"}));
  EXPECT_EQ(t[0].outputs, std::vector<std::string>{"o.html"});
  EXPECT_EQ(t[0].cache, true);
  EXPECT_EQ(t[1].cache, false);
  EXPECT_FALSE(t[1].Cached());  // off wins over declared sources
  EXPECT_EQ(t[2].cache, true);
  EXPECT_TRUE(t[2].Cached());  // on without sources is allowed
  EXPECT_EQ(t[3].cache, false);
  EXPECT_EQ(t[3].outputs, std::vector<std::string>{"out/*"});  // outputs, caching off: allowed
  EXPECT_EQ(t[4].cache, std::nullopt);
  EXPECT_TRUE(t[4].sources.empty() && t[4].outputs.empty());
  EXPECT_FALSE(t[4].Cached());
  EXPECT_EQ(t[5].cache, std::nullopt);
  EXPECT_EQ(t[5].sources, std::vector<std::string>{"./a//b"});  // kept as written
  EXPECT_TRUE(t[5].Cached());
  EXPECT_EQ(t[6].cache, true);
}

TEST(TaskCacheFields, JsonBooleansAndStringsDecodeAlike) {
  Diagnostics diags;
  auto chain = Parse(R"({"tasks": [
    {"task_id": "a", "command": "x", "cache": "off", "sources": ["s"]},
    {"task_id": "b", "command": "x", "cache": false, "sources": ["s"]},
    {"task_id": "c", "command": "x", "cache": true}]})",
                     "c.json", &diags);
  ASSERT_TRUE(chain) << Messages(diags)[0];
  EXPECT_EQ(chain->tasks[0].cache, false);
  EXPECT_EQ(chain->tasks[1].cache, false);
  EXPECT_EQ(chain->tasks[2].cache, true);
}

TEST(TaskCacheFields, BadValuesAreErrorsAtTheirNode) {
  Diagnostics diags;
  EXPECT_FALSE(Parse(R"(
tasks:
  - task_id: a
    command: x
    cache: maybe
  - task_id: b
    command: x
    cache: yes
    sources: src/*.py
  - {task_id: c, command: x, cache: 1, outputs: [1, "/x"]}
)",
                     "c.yaml", &diags));
  EXPECT_EQ(Messages(diags),
            (std::vector<std::string>{
                "c.yaml:5:12: tasks[0].cache: must be one of: on, off, true, false (got "
                "\"maybe\")",
                "c.yaml:8:12: tasks[1].cache: must be one of: on, off, true, false (got \"yes\")",
                "c.yaml:9:14: tasks[1].sources: expected array, got string",
                "c.yaml:10:37: tasks[2].cache: must be one of: on, off, true, false (got 1)",
                "c.yaml:10:50: tasks[2].outputs[0]: expected string, got integer",
                "c.yaml:10:53: tasks[2].outputs[1]: outputs glob '/x' is absolute (outputs are "
                "relative to the chain file's folder)",
            }));
}

TEST(TaskCacheFields, GlobsBreakingTheGrammarAreErrorsAtTheElement) {
  Diagnostics diags;
  EXPECT_FALSE(Parse(R"(
tasks:
  - task_id: a
    command: x
    sources:
      - src/*.py
      - ""
      - /abs/*.py
  - task_id: b
    command: y
    sources: [ok, "../up/*.c", "a**"]
    outputs: [build/**, "x/**b"]
)",
                     "c.yaml", &diags));
  EXPECT_EQ(Messages(diags),
            (std::vector<std::string>{
                "c.yaml:7:9: tasks[0].sources[1]: sources glob '' is empty",
                "c.yaml:8:9: tasks[0].sources[2]: sources glob '/abs/*.py' is absolute (sources "
                "are relative to the chain file's folder)",
                "c.yaml:11:19: tasks[1].sources[1]: sources glob '../up/*.c' leaves the chain "
                "file's folder (..)",
                "c.yaml:11:32: tasks[1].sources[2]: sources glob 'a**' joins ** to other "
                "characters in one component (write a/**/b*)",
                "c.yaml:12:25: tasks[1].outputs[1]: outputs glob 'x/**b' joins ** to other "
                "characters in one component (write a/**/b*)",
            }));
}

TEST(TaskCacheFields, UnknownFieldCheckingKnowsThem) {
  Diagnostics diags;
  EXPECT_FALSE(
      Parse("tasks: [{task_id: a, command: x, source: [a], caches: on}]", "c.yaml", &diags));
  EXPECT_EQ(Messages(diags),
            (std::vector<std::string>{
                "c.yaml:1:34: tasks[0].source: unknown field \"source\" (did you mean "
                "\"sources\"?)",
                "c.yaml:1:47: tasks[0].caches: unknown field \"caches\" (did you mean \"cache\"?)",
            }));
}

TEST(TaskCacheFields, ChainToJsonWritesThemBack) {
  Diagnostics diags;
  auto first = Parse(R"({"tasks": [
    {"task_id": "a", "command": "x", "sources": ["src/**", "b?.c"], "outputs": ["out/*"],
     "cache": true},
    {"task_id": "b", "command": "x", "sources": ["s"], "cache": "off"},
    {"task_id": "c", "command": "x", "sources": ["s"]},
    {"task_id": "d", "command": "x"}]})",
                     "c.json", &diags);
  ASSERT_TRUE(first) << Messages(diags)[0];
  nlohmann::json dumped = ChainToJson(*first);
  const nlohmann::json& tasks = dumped["tasks"];
  EXPECT_EQ(tasks[0]["sources"], nlohmann::json({"src/**", "b?.c"}));
  EXPECT_EQ(tasks[0]["outputs"], nlohmann::json({"out/*"}));
  EXPECT_EQ(tasks[0]["cache"], "on");
  EXPECT_EQ(tasks[1]["cache"], "off");
  EXPECT_FALSE(tasks[2].contains("cache"));  // not written: left to Cached()'s default
  EXPECT_EQ(tasks[3], nlohmann::json({{"task_id", "d"}, {"command", "x"}}));

  auto second = Parse(dumped.dump(), "c.json", &diags);
  ASSERT_TRUE(second) << Messages(diags)[0];
  EXPECT_EQ(ChainToJson(*second), dumped);
  for (size_t i = 0; i < first->tasks.size(); ++i) {
    const TaskSpec& a = first->tasks[i];
    const TaskSpec& b = second->tasks[i];
    EXPECT_EQ(a.sources, b.sources) << i;
    EXPECT_EQ(a.outputs, b.outputs) << i;
    EXPECT_EQ(a.cache, b.cache) << i;
    EXPECT_EQ(a.Cached(), b.Cached()) << i;
  }
}

TEST(TaskCacheFields, CheckSourceGlobNamesTheFieldAndExpandKeepsItsMessages) {
  std::string err;
  EXPECT_TRUE(CheckSourceGlob("a/**/b*", "outputs", &err));
  EXPECT_TRUE(CheckSourceGlob("src/**", "sources", &err));
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_FALSE(CheckSourceGlob("./.", "outputs", &err));
  EXPECT_EQ(err, "outputs glob './.' is empty");
  EXPECT_FALSE(CheckSourceGlob("a/../b", "sources", &err));
  EXPECT_EQ(err, "sources glob 'a/../b' leaves the chain file's folder (..)");

  testing::ScopedTempDir dir;
  std::vector<std::string> files;
  EXPECT_FALSE(ExpandSourceGlobs(dir.path(), {"/etc/*"}, {}, &files, &err));
  EXPECT_EQ(err,
            "sources glob '/etc/*' is absolute (sources are relative to the chain file's "
            "folder)");
}

}  // namespace
}  // namespace chainctl
