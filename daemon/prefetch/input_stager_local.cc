// Local files of InputStager (input_stager.h): placing one file by hard link, reflink or copy.

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/prefetch/http_get.h"
#include "daemon/prefetch/input_stager.h"

namespace chainctl::daemon {
namespace {

constexpr size_t kCopyChunk = 1 << 20;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         MtimeNs(a) == MtimeNs(b);
}

void Describe(const std::string& source, const std::string& dest, const struct stat& st,
              bool linked, StagedFile* file) {
  *file = StagedFile{};
  file->source = source;
  file->path = dest;
  file->size = static_cast<uint64_t>(st.st_size);
  file->mtime_ns = MtimeNs(st);
  file->inode = static_cast<uint64_t>(st.st_ino);
  file->device = static_cast<uint64_t>(st.st_dev);
  file->linked = linked;
}

bool WriteAllOr(int fd, const char* data, size_t size, std::string* err) {
  int error = 0;
  if (WriteAll(fd, data, size, &error)) return true;
  errno = error;
  *err = Errno("writing");
  return false;
}

// Whether `in`, read up to its size, has more to give (the files under /proc and /sys say size
// 0 and produce data, some never end, like /proc/kmsg). `in` is non-blocking.
bool HasMore(int in) {
  char byte = 0;
  ssize_t n = 0;
  do {
    n = read(in, &byte, 1);
  } while (n < 0 && errno == EINTR);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

// Byte copy of the first `size` bytes of `in` into `out`: copy_file_range, else read/write. A
// source that has more than `size` bytes is refused, so that an endless one cannot hold a
// thread (and the run waiting for it) for ever.
bool CopyBytes(int in, int out, uint64_t size, uint64_t* copied, std::string* err,
               const StageCancelled& cancelled) {
  bool plain = false;
  uint64_t done = 0;
  while (done < size) {
    if (cancelled && cancelled()) {
      *err = "cancelled";
      return false;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, size - done));
    ssize_t n = 0;
    if (!plain) {
      n = copy_file_range(in, nullptr, out, nullptr, want, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        plain = true;
        continue;
      }
    } else {
      static thread_local char buffer[64 * 1024];
      n = read(in, buffer, std::min(want, sizeof buffer));
      if (n > 0 && !WriteAllOr(out, buffer, static_cast<size_t>(n), err)) return false;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = Errno("copying");
      return false;
    }
    if (n == 0) break;  // shorter than it was: the identity check after the copy says so
    done += static_cast<uint64_t>(n);
    *copied += static_cast<uint64_t>(n);
  }
  if (done == size && HasMore(in)) {
    *err = "not staged: it has no fixed size (it gives more than the " + std::to_string(size) +
           " bytes it says it has, like the files under /proc); stage a copy of it";
    return false;
  }
  return true;
}

// Reflink, else byte copy, of `in` (described by `st`) to a new file `dest`, with the source's
// mode and mtime.
bool CopyFile(int in, const struct stat& st, const std::string& dest, uint64_t* copied,
              std::string* err, const StageCancelled& cancelled) {
  int out = open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    *err = Errno("creating " + dest);
    return false;
  }
  bool ok = ioctl(out, FICLONE, in) == 0 ||
            CopyBytes(in, out, static_cast<uint64_t>(st.st_size), copied, err, cancelled);
  struct timespec times[2] = {{0, UTIME_OMIT}, st.st_mtim};
  if (ok && futimens(out, times) != 0) {
    *err = Errno("setting the mtime of " + dest);
    ok = false;
  }
  if (close(out) != 0 && ok) {
    *err = Errno("writing " + dest);
    ok = false;
  }
  if (!ok) unlink(dest.c_str());
  return ok;
}

bool Copy(const std::string& source, const std::string& dest, StagedFile* file, uint64_t* copied,
          std::string* err, const StageCancelled& cancelled) {
  // Non-blocking: a source that would block a read (a pseudo-file) is refused, not waited on.
  int in = open(source.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat before {
  }, after{};
  if (in < 0 || fstat(in, &before) != 0) {
    *err = Errno(source);
    if (in >= 0) close(in);
    return false;
  }
  uint64_t bytes = 0;
  bool ok = CopyFile(in, before, dest, &bytes, err, cancelled);
  const bool same = fstat(in, &after) == 0 && SameFile(before, after);
  if (!same) {
    *err = source + " changed while it was copied";
    if (ok) unlink(dest.c_str());
    ok = false;
  } else if (!ok && *err != "cancelled") {
    *err = source + ": " + *err;
  }
  close(in);
  if (!ok) return false;
  *copied += bytes;
  Describe(source, dest, before, /*linked=*/false, file);
  return true;
}

}  // namespace

bool PlaceLocalFile(const std::string& source, const std::string& dest, bool allow_hardlink,
                    StagedFile* file, uint64_t* bytes_copied, std::string* err,
                    const StageCancelled& cancelled) {
  if (unlink(dest.c_str()) != 0 && errno != ENOENT) {
    *err = Errno("removing " + dest);
    return false;
  }
  // linkat follows a symlinked source, so the link is to the file itself.
  if (allow_hardlink &&
      linkat(AT_FDCWD, source.c_str(), AT_FDCWD, dest.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    struct stat st {};
    if (stat(dest.c_str(), &st) != 0) {
      *err = Errno(dest);
      return false;
    }
    Describe(source, dest, st, /*linked=*/true, file);
    return true;
  }
  return Copy(source, dest, file, bytes_copied, err, cancelled);
}

}  // namespace chainctl::daemon
