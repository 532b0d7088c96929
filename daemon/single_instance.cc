#include "daemon/single_instance.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/paths.h"
#include "daemon/util/log.h"

namespace chainctl::daemon {
namespace {

// True if something accepts connections on `path`.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

}  // namespace

bool StateLock::Acquire(const std::string& state_dir, std::string* err) {
  std::string path = state_dir + "/chaind.lock";
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    *err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  struct flock whole_file {};
  whole_file.l_type = F_WRLCK;
  whole_file.l_whence = SEEK_SET;  // l_start 0, l_len 0: the whole file
  if (fcntl(fd_, F_SETLK, &whole_file) != 0) {
    char pid[32] = {};
    ssize_t n = pread(fd_, pid, sizeof pid - 1, 0);
    std::string who = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
    while (!who.empty() && who.back() == '\n') who.pop_back();
    *err = "another chaind (pid " + who + ") is using the state directory " + state_dir;
    return false;
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    *err = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

StateLock::~StateLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

bool PrepareSocketPath(const std::string& path, std::string* err) {
  if (!CheckSocketPathLength(path, err)) return false;
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty() && !EnsurePrivateDir(dir, err)) return false;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return true;
  if (!S_ISSOCK(st.st_mode)) {
    *err = path + " exists and is not a socket; remove it";
    return false;
  }
  if (SomeoneListens(path)) {
    *err = "a chaind is already listening on " + path;
    return false;
  }
  Log(LogLevel::kInfo, "removing the stale socket " + path);
  unlink(path.c_str());
  return true;
}

}  // namespace chainctl::daemon
