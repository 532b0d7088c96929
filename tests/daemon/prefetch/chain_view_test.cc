// WarmKey (chain_view.h): what a prewarmed process is known by, so that only a run whose task
// would be launched the same way takes it (DESIGN.md §5; a run's environment, issue 17).
#include "daemon/prefetch/chain_view.h"

#include <gtest/gtest.h>

#include "daemon/prefetch/figures.h"

namespace chainctl::daemon {
namespace {

TaskLaunch Launch() {
  TaskLaunch launch;
  launch.argv = {"/bin/sh", "-c", "make test", "sh"};
  launch.env = {"PATH=/usr/bin:/bin", "CHAIN_TASK_ID=t", "CHAIN_WORKDIR=/state/prewarm/1",
                "CHAIN_CONTEXT_FILE=/state/prewarm/1/context.json"};
  launch.cwd = "/src/project";
  return launch;
}

TEST(WarmKeyTest, TheRunsEnvironmentAndTheFolderArePartOfTheKey) {
  const std::string key = WarmKey("c", "t", Launch());
  TaskLaunch secret = Launch();
  secret.env.push_back("TOKEN=one");
  TaskLaunch other_secret = Launch();
  other_secret.env.push_back("TOKEN=two");
  EXPECT_NE(WarmKey("c", "t", secret), key) << "a run with --env takes no process started without";
  EXPECT_NE(WarmKey("c", "t", secret), WarmKey("c", "t", other_secret))
      << "nor one of other values";
  TaskLaunch moved = Launch();
  moved.cwd = "/src/other-checkout";
  EXPECT_NE(WarmKey("c", "t", moved), key) << "nor one started in another folder";
  EXPECT_EQ(WarmKey("c", "t", secret).find("one"), std::string::npos) << "the key shows no value";
}

TEST(WarmKeyTest, EachPrewarmsOwnFolderIsNot) {
  TaskLaunch elsewhere = Launch();
  elsewhere.env[2] = "CHAIN_WORKDIR=/state/prewarm/2";
  elsewhere.env[3] = "CHAIN_CONTEXT_FILE=/state/prewarm/2/context.json";
  EXPECT_EQ(WarmKey("c", "t", elsewhere), WarmKey("c", "t", Launch()));
}

TEST(WarmKeyTest, ARunsOwnValuesSaltTheKeyAndAreNeverWritten) {
  TaskLaunch secret = Launch();
  secret.env.push_back("TOKEN=one");
  std::string key = WarmKey("c", "t", secret, /*run_values=*/true);
  EXPECT_TRUE(key.ends_with(kRunValuesKey)) << key;
  EXPECT_EQ(key, WarmKey("c", "t", secret, true)) << "the same within a chaind";
  EXPECT_NE(key.substr(0, key.size() - 4), WarmKey("c", "t", secret)) << "salted";

  FigureBook book(600000);
  book.Touch(key, "c", "t", 1).startups.Add(120);
  book.Touch(WarmKey("c", "t", Launch()), "c", "t", 2).startups.Add(80);
  nlohmann::json written = book.Measurements(100);
  std::string text = written.dump();
  EXPECT_EQ(text.find(kRunValuesKey), std::string::npos) << text;
  EXPECT_NE(text.find(WarmKey("c", "t", Launch())), std::string::npos) << text;
}

}  // namespace
}  // namespace chainctl::daemon
