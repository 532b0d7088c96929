#include "common/paths.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "tests/test_util.h"

namespace chainctl {
namespace {

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(Paths, SocketFollowsTheDesign) {
  EXPECT_EQ(DefaultSocketPath(FakeEnv({{"CHAINCTL_SOCKET", "/s"}, {"XDG_RUNTIME_DIR", "/r"}}), 7),
            "/s");
  EXPECT_EQ(DefaultSocketPath(FakeEnv({{"XDG_RUNTIME_DIR", "/run/user/7"}}), 7),
            "/run/user/7/chainctl/chaind.sock");
  EXPECT_EQ(DefaultSocketPath(FakeEnv({{"XDG_RUNTIME_DIR", ""}}), 7),
            "/tmp/chainctl-7/chaind.sock");
}

TEST(Paths, ChaindConfigFile) {
  bool required = false;
  EXPECT_EQ(DefaultConfigFile(FakeEnv({{"CHAIND_CONFIG", "/c.conf"}, {"HOME", "/h"}}), &required),
            "/c.conf");
  EXPECT_TRUE(required) << "a file named by CHAIND_CONFIG must exist";
  EXPECT_EQ(DefaultConfigFile(FakeEnv({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}}), &required),
            "/x/chainctl/chaind.conf");
  EXPECT_FALSE(required);
  EXPECT_EQ(DefaultConfigFile(FakeEnv({{"HOME", "/h"}})), "/h/.config/chainctl/chaind.conf");
  EXPECT_EQ(DefaultConfigFile(FakeEnv({})), "");
}

TEST(Paths, StateDirFollowsTheDesign) {
  EXPECT_EQ(DefaultStateDir(FakeEnv({{"CHAINCTL_STATE_DIR", "/st"}, {"HOME", "/h"}}), 7), "/st");
  EXPECT_EQ(DefaultStateDir(FakeEnv({{"XDG_STATE_HOME", "/x"}, {"HOME", "/h"}}), 7), "/x/chainctl");
  EXPECT_EQ(DefaultStateDir(FakeEnv({{"HOME", "/home/u"}}), 7), "/home/u/.local/state/chainctl");
  EXPECT_EQ(DefaultStateDir(FakeEnv({}), 7), "/tmp/chainctl-7/state");
}

TEST(Paths, EnsurePrivateDir) {
  testing::ScopedTempDir tmp;
  std::string err;
  std::string dir = tmp.path() + "/a/b/chainctl";
  ASSERT_TRUE(EnsurePrivateDir(dir, &err)) << err;
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(EnsurePrivateDir(dir, &err)) << err;  // idempotent

  chmod(dir.c_str(), 0777);
  EXPECT_FALSE(EnsurePrivateDir(dir, &err));
  EXPECT_EQ(err, dir + " is writable by other users (mode 777); chmod 700 it");

  std::string file = tmp.WriteFile("plain", "x");
  EXPECT_FALSE(EnsurePrivateDir(file, &err));
  EXPECT_EQ(err, file + " is not a directory");

  if (getuid() == 0) {  // a directory of another user
    std::string theirs = tmp.path() + "/theirs";
    ASSERT_EQ(mkdir(theirs.c_str(), 0700), 0);
    ASSERT_EQ(chown(theirs.c_str(), 65534, 65534), 0);
    EXPECT_FALSE(EnsurePrivateDir(theirs, &err));
    EXPECT_NE(err.find("belongs to uid 65534"), std::string::npos) << err;
  }
}

TEST(Paths, SocketPathLength) {
  std::string err;
  EXPECT_TRUE(CheckSocketPathLength(std::string(107, 'a'), &err));
  EXPECT_FALSE(CheckSocketPathLength(std::string(108, 'a'), &err));
  EXPECT_NE(err.find("socket path is too long (108 bytes; the limit is 107)"), std::string::npos);
}

}  // namespace
}  // namespace chainctl
