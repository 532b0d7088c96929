#include "daemon/util/log_bound.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

namespace chainctl::daemon {
namespace {

constexpr uint64_t kBlock = 4096;

}  // namespace

uint64_t BoundLog(const std::string& path, uint64_t max_bytes) {
  struct stat st {};
  if (max_bytes == 0 || path.empty() || stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return 0;
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  const auto on_disk = static_cast<uint64_t>(st.st_blocks) * 512;
  if (on_disk <= max_bytes) return 0;
  const uint64_t half = max_bytes / 2;
  const uint64_t start = (half + kBlock - 1) / kBlock * kBlock;             // after the head
  const uint64_t stop = size > half ? (size - half) / kBlock * kBlock : 0;  // before the tail
  if (stop <= start) return 0;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  int rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                     static_cast<off_t>(stop - start));
  if (rc != 0 && errno == EOPNOTSUPP) rc = ftruncate(fd, static_cast<off_t>(start));
  struct stat after {};
  uint64_t freed = 0;
  if (rc == 0 && fstat(fd, &after) == 0) {
    const auto now = static_cast<uint64_t>(after.st_blocks) * 512;
    freed = on_disk > now ? on_disk - now : 0;
  }
  close(fd);
  return freed;
}

void LogData(int fd, uint64_t offset, uint64_t end, uint64_t* from, uint64_t* to) {
  *from = *to = end;
  if (offset >= end) return;
  off_t data = lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) return;  // a hole up to the end of the file
    *from = offset;              // no SEEK_DATA here: all of it is data
    return;
  }
  *from = std::min(static_cast<uint64_t>(data), end);
  off_t hole = lseek(fd, data, SEEK_HOLE);  // the end of the file at the latest
  *to = hole < 0 ? end : std::clamp(static_cast<uint64_t>(hole), *from, end);
}

uint64_t StartOfLastData(int fd, uint64_t size, uint64_t max_bytes) {
  constexpr size_t kMaxExtents = 64;  // a log BoundLog keeps has two or three
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  for (uint64_t at = 0; at < size && extents.size() < kMaxExtents;) {
    uint64_t from = 0, to = 0;
    LogData(fd, at, size, &from, &to);
    if (from >= size) break;
    extents.emplace_back(from, to);
    at = std::max(to, at + 1);
  }
  if (extents.size() == kMaxExtents) return size > max_bytes ? size - max_bytes : 0;
  uint64_t want = max_bytes;
  for (auto it = extents.rbegin(); it != extents.rend(); ++it) {
    const uint64_t length = it->second - it->first;
    if (length >= want) return it->second - want;
    want -= length;
  }
  return 0;
}

std::string DroppedMarker(uint64_t bytes) {
  return "\n[chaind: " + std::to_string(bytes) +
         " bytes of this log were dropped here, to keep it within chaind --max-log]\n";
}

}  // namespace chainctl::daemon
