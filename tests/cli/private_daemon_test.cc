// StartPrivateDaemon and PrivateDaemon (cli/daemon_client.h), the parts of chainctl run
// --no-daemon, with the real chaind of this build.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/daemon_client.h"
#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

namespace fs = std::filesystem;
using chainctl::testing::ScopedTempDir;

const std::string kChaind = std::string(CHAINCTL_BINARY_DIR) + "/daemon/chaind";

// A process that is gone: not even a zombie (the handle reaps what it started).
bool Gone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

size_t Entries(const std::string& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

class PrivateDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kChaind.c_str(), X_OK) != 0) GTEST_SKIP() << "chaind is not built: " << kChaind;
    setenv("CHAIND", kChaind.c_str(), 1);
    // The sockets' folders go under tmp_ (checked empty after), no configuration file is read.
    setenv("TMPDIR", tmp_.path().c_str(), 1);
    setenv("XDG_CONFIG_HOME", tmp_.path().c_str(), 1);
    options_.state_dir = state_.path();
  }
  void TearDown() override {
    unsetenv("CHAIND");
    unsetenv("TMPDIR");
    unsetenv("XDG_CONFIG_HOME");
  }

  ScopedTempDir tmp_;
  ScopedTempDir state_;
  DaemonOptions options_;
};

TEST_F(PrivateDaemonTest, StartsOnATemporarySocketWithTheStateFolderAndStops) {
  PrivateDaemon daemon;
  std::string err;
  ASSERT_TRUE(StartPrivateDaemon(options_, &daemon, &err)) << err;
  ASSERT_TRUE(daemon.running());
  const DaemonOptions& o = daemon.options();
  EXPECT_EQ(o.state_dir, state_.path());
  EXPECT_FALSE(o.autostart);
  std::string dir = fs::path(o.socket).parent_path().string();
  EXPECT_EQ(fs::path(dir).parent_path().string(), tmp_.path());
  struct stat st {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  nlohmann::json health;
  ASSERT_TRUE(DaemonHealth(o, &health));
  EXPECT_EQ(health.value("pid", 0), daemon.pid());
  EXPECT_TRUE(fs::exists(state_.path() + "/store"));  // the state folder given, not a private one

  pid_t pid = daemon.pid();
  ASSERT_TRUE(daemon.Stop(&err)) << err;  // SIGTERM: exit 0
  EXPECT_FALSE(daemon.running());
  EXPECT_TRUE(Gone(pid));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(Entries(tmp_.path()), 0u);
  EXPECT_TRUE(daemon.Stop(&err));  // again: nothing to do
}

TEST_F(PrivateDaemonTest, TheHandleStopsItWhenItGoes) {
  pid_t pid = 0;
  std::string socket;
  {
    PrivateDaemon daemon;
    std::string err;
    ASSERT_TRUE(StartPrivateDaemon(options_, &daemon, &err)) << err;
    pid = daemon.pid();
    PrivateDaemon moved = std::move(daemon);  // the handle moves; one stop
    EXPECT_FALSE(daemon.running());
    EXPECT_EQ(moved.pid(), pid);
    socket = moved.options().socket;
  }
  EXPECT_TRUE(Gone(pid));
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_EQ(Entries(tmp_.path()), 0u);
}

TEST_F(PrivateDaemonTest, AnotherChaindOnTheStateFolderIsNamed) {
  PrivateDaemon first;
  std::string err;
  ASSERT_TRUE(StartPrivateDaemon(options_, &first, &err)) << err;
  PrivateDaemon second;
  EXPECT_FALSE(StartPrivateDaemon(options_, &second, &err));
  EXPECT_FALSE(second.running());
  EXPECT_NE(err.find("another chaind (pid " + std::to_string(first.pid()) + ")"), std::string::npos)
      << err;
  EXPECT_NE(err.find("drop --no-daemon"), std::string::npos) << err;
  EXPECT_EQ(Entries(tmp_.path()), 1u);  // the first's folder only
  nlohmann::json health;
  EXPECT_TRUE(DaemonHealth(first.options(), &health));  // untouched
}

TEST_F(PrivateDaemonTest, AChaindThatCannotStartIsReported) {
  std::string fake =
      state_.WriteFile("bin/chaind", "#!/bin/sh\necho 'cannot start: broken' >&2\nexit 1\n",
                       /*executable=*/true);
  setenv("CHAIND", fake.c_str(), 1);
  PrivateDaemon daemon;
  std::string err;
  EXPECT_FALSE(StartPrivateDaemon(options_, &daemon, &err));
  EXPECT_NE(err.find("chaind exited at start (status 1)"), std::string::npos) << err;
  EXPECT_NE(err.find("cannot start: broken"), std::string::npos) << err;
  EXPECT_FALSE(daemon.running());
  EXPECT_EQ(Entries(tmp_.path()), 0u);
}

}  // namespace
}  // namespace chainctl::cli
