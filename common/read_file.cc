#include "common/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace chainctl {

int ReadFileBytes(const std::string& path, std::string* content, uint64_t limit) {
  content->clear();
  // O_NONBLOCK: a FIFO there must not block the caller (chaind's loop) in open().
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errno;
  struct stat st {};
  int error = fstat(fd, &st) < 0 ? errno : (S_ISREG(st.st_mode) ? 0 : EINVAL);
  if (error == 0 && static_cast<uint64_t>(st.st_size) > limit) error = EFBIG;
  if (error == 0) content->reserve(static_cast<size_t>(st.st_size));
  char buffer[16384];
  while (error == 0) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno != EINTR) error = errno;
      continue;
    }
    if (content->size() + static_cast<size_t>(n) > limit) error = EFBIG;  // it grew
    content->append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return error;
}

}  // namespace chainctl
