#include "cli/watch.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

using std::chrono::milliseconds;
using Paths = std::vector<std::string>;

// Long enough for inotify on a loaded machine: a wait that ends early ends at the change.
constexpr milliseconds kChangeTimeout(10'000);
// How long a test waits to see that nothing is reported (a bounded poll, not a sleep).
constexpr milliseconds kNothingTimeout(300);

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("chain.yaml", "tasks: []\n");
    dir_.WriteFile("src/a.py", "a = 1\n");
    dir_.WriteFile("src/pkg/b.py", "b = 1\n");
    dir_.WriteFile("src/notes.txt", "notes\n");
  }

  // Starts the watcher on the temp tree with `globs` (chain.yaml is one of its files).
  void Start(Paths globs, Paths ignore_globs = {}) {
    WatchSpec spec;
    spec.base = dir_.path();
    spec.globs = std::move(globs);
    spec.files = {"chain.yaml"};
    spec.ignore = {dir_.path() + "/state"};
    spec.ignore_globs = std::move(ignore_globs);
    std::string err;
    ASSERT_TRUE(watcher_.Start(spec, &err)) << err;
  }

  // The next burst of changes, waited for at most `timeout`.
  Paths Next(milliseconds timeout = kChangeTimeout, Debounce debounce = {milliseconds(50), {}}) {
    std::chrono::steady_clock::time_point first;
    return WaitForChanges(&watcher_, debounce, timeout, nullptr, &first);
  }

  std::string Path(const std::string& rel) const { return dir_.path() + "/" + rel; }

  testing::ScopedTempDir dir_;
  Watcher watcher_;
};

TEST(SourceGlobMatches, FollowsTheSourcesGrammar) {
  EXPECT_TRUE(SourceGlobMatches("src/**/*.py", "src/a.py"));
  EXPECT_TRUE(SourceGlobMatches("src/**/*.py", "src/x/y/a.py"));
  EXPECT_FALSE(SourceGlobMatches("src/**/*.py", "src/a.txt"));
  EXPECT_FALSE(SourceGlobMatches("src/**/*.py", "lib/a.py"));
  EXPECT_TRUE(SourceGlobMatches("*.py", ".hidden.py"));  // a dot is not special
  EXPECT_FALSE(SourceGlobMatches("*.py", "src/a.py"));   // * stays in its component
  EXPECT_TRUE(SourceGlobMatches("src/**", "src/x/y"));
  EXPECT_FALSE(SourceGlobMatches("src/**", "src"));
  EXPECT_TRUE(SourceGlobMatches("./a//b.py", "a/b.py"));
  EXPECT_TRUE(SourceGlobMatches("data/[ab].csv", "data/b.csv"));
  EXPECT_FALSE(SourceGlobMatches("/abs/*.py", "abs/a.py"));
}

TEST_F(WatchTest, WritingAMatchingFileIsAChange) {
  Start({"src/**/*.py"});
  dir_.WriteFile("src/a.py", "a = 2\n");
  EXPECT_EQ(Next(), Paths({"src/a.py"}));
  dir_.WriteFile("src/pkg/b.py", "b = 2\n");
  EXPECT_EQ(Next(), Paths({"src/pkg/b.py"}));
}

TEST_F(WatchTest, ANonMatchingFileIsNot) {
  Start({"src/**/*.py"});
  dir_.WriteFile("src/notes.txt", "more notes\n");
  dir_.WriteFile("top.py", "outside src\n");
  EXPECT_EQ(Next(kNothingTimeout), Paths());
  // The events were read and dropped: a matching change after them is reported alone.
  dir_.WriteFile("src/a.py", "a = 3\n");
  EXPECT_EQ(Next(), Paths({"src/a.py"}));
}

TEST_F(WatchTest, RenameAndDeleteAreChanges) {
  Start({"src/**/*.py"});
  ASSERT_EQ(std::rename(Path("src/a.py").c_str(), Path("src/c.py").c_str()), 0);
  EXPECT_EQ(Next(), Paths({"src/a.py", "src/c.py"}));
  ASSERT_EQ(std::remove(Path("src/c.py").c_str()), 0);
  EXPECT_EQ(Next(), Paths({"src/c.py"}));
  // An editor's save: a new file renamed over the old one.
  dir_.WriteFile("src/.b.py.swp", "b = 9\n");
  ASSERT_EQ(std::rename(Path("src/.b.py.swp").c_str(), Path("src/pkg/b.py").c_str()), 0);
  EXPECT_EQ(Next(), Paths({"src/pkg/b.py"}));
}

TEST_F(WatchTest, ANewSubfolderIsWatched) {
  Start({"src/**/*.py"});
  size_t before = watcher_.watched_folders();
  // The file is written before chainctl can watch its folder: found when the folder is.
  dir_.WriteFile("src/new/deep/d.py", "d = 1\n");
  Paths changed = Next();
  EXPECT_EQ(changed, Paths({"src/new/deep/d.py"}));
  EXPECT_EQ(watcher_.watched_folders(), before + 2);
  dir_.WriteFile("src/new/deep/d.py", "d = 2\n");
  EXPECT_EQ(Next(), Paths({"src/new/deep/d.py"}));
}

TEST_F(WatchTest, AGlobsFolderThatAppearsLaterIsWatched) {
  Start({"gen/*.py"});
  dir_.WriteFile("gen/g.py", "g = 1\n");
  EXPECT_EQ(Next(), Paths({"gen/g.py"}));
  dir_.WriteFile("gen/sub/h.py", "not matched: gen/*.py is one level\n");
  EXPECT_EQ(Next(kNothingTimeout), Paths());
}

TEST_F(WatchTest, AFolderMovedAwayIsAChange) {
  Start({"src/**/*.py"});
  std::filesystem::rename(Path("src/pkg"), Path("pkg-moved"));
  EXPECT_EQ(Next(), Paths({"src/pkg"}));
  // Its watch went with it: writes there are not this tree's.
  dir_.WriteFile("pkg-moved/b.py", "b = 3\n");
  EXPECT_EQ(Next(kNothingTimeout), Paths());
}

TEST_F(WatchTest, GitStateAndOutputsAreIgnored) {
  dir_.WriteFile(".git/hooks/x.py", "");
  dir_.WriteFile("state/runs/r.py", "");
  Start({"**/*.py"}, {"build/**"});
  dir_.WriteFile(".git/hooks/x.py", "git's\n");
  dir_.WriteFile("state/runs/r.py", "chaind's\n");
  dir_.WriteFile("build/out.py", "an output\n");
  EXPECT_EQ(Next(kNothingTimeout), Paths());
  dir_.WriteFile("chain.yaml", "tasks: [] # edited\n");
  EXPECT_EQ(Next(), Paths({"chain.yaml"}));
}

TEST_F(WatchTest, DebounceMergesABurst) {
  Start({"src/**/*.py"});
  for (int i = 0; i < 20; ++i) dir_.WriteFile("src/burst" + std::to_string(i % 4) + ".py", "x\n");
  dir_.WriteFile("src/a.py", "a = 4\n");
  EXPECT_EQ(
      Next(kChangeTimeout, {milliseconds(100), milliseconds(2000)}),
      Paths({"src/a.py", "src/burst0.py", "src/burst1.py", "src/burst2.py", "src/burst3.py"}));
  EXPECT_EQ(Next(kNothingTimeout), Paths());  // nothing left for a second run
}

TEST_F(WatchTest, StopEndsTheWait) {
  Start({"src/**/*.py"});
  dir_.WriteFile("src/a.py", "a = 5\n");
  std::chrono::steady_clock::time_point first;
  auto start = std::chrono::steady_clock::now();
  Paths changed = WaitForChanges(
      &watcher_, {}, kChangeTimeout, [] { return true; }, &first);
  EXPECT_EQ(changed, Paths());
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

TEST(Watcher, AMissingBaseIsAnError) {
  Watcher watcher;
  WatchSpec spec;
  spec.base = "/nonexistent/chainctl-watch-test";
  spec.globs = {"*.py"};
  std::string err;
  EXPECT_FALSE(watcher.Start(spec, &err));
  EXPECT_NE(err.find("/nonexistent/chainctl-watch-test"), std::string::npos) << err;
}

}  // namespace
}  // namespace chainctl::cli
