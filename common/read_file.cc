#include "common/read_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace chainctl {

bool ReadFileBytes(const std::string& path, std::string* out, int* error) {
  out->clear();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = errno;
    return false;
  }
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out->append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      *error = n == 0 ? 0 : errno;
      break;
    }
  }
  close(fd);
  return *error == 0;
}

}  // namespace chainctl
