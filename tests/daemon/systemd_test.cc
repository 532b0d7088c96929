#include "daemon/systemd.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

TEST(Systemd, ListenFdOnlyForThisProcess) {
  setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  EXPECT_EQ(SystemdListenFd(), 3);
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);  // children must not see them
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);

  setenv("LISTEN_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for another process
  setenv("LISTEN_FDS", "1", 1);
  EXPECT_EQ(SystemdListenFd(), -1);
  EXPECT_EQ(SystemdListenFd(), -1);  // nothing set
}

TEST(Systemd, NotifySendsTheState) {
  testing::ScopedTempDir dir;
  std::string path = dir.path() + "/notify";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(SystemdNotify("READY=1"));
  char buffer[64] = {};
  ssize_t n = recv(fd, buffer, sizeof buffer - 1, 0);  // already queued: no wait
  EXPECT_EQ(std::string(buffer, n > 0 ? static_cast<size_t>(n) : 0), "READY=1");
  unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(SystemdNotify("STOPPING=1"));  // no systemd: nothing to do
  close(fd);
}

}  // namespace
}  // namespace chainctl::daemon
