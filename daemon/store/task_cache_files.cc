#include "daemon/store/task_cache_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace chainctl::daemon::cache_files {
namespace {

namespace fs = std::filesystem;

// Bytes asked of one copy_file_range call.
constexpr size_t kCopyChunk = size_t{1} << 30;

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// read(2) and write(2) from the current offsets to the end of `in`.
bool CopyPlain(int in, int out) {
  static thread_local char buffer[1 << 16];
  for (;;) {
    ssize_t n = read(in, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    if (!WriteAll(out, buffer, static_cast<size_t>(n))) return false;
  }
}

// A new empty file from the mkostemp(3) template `path` (its XXXXXX replaced); -1 and errno.
int MakeTemp(std::string* path) { return mkostemp(path->data(), O_CLOEXEC); }

// The folder part of `path` ("." for a bare name).
std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string ErrnoText(const std::string& what, int error) {
  return what + ": " + std::strerror(error);
}

bool IsSafeRelativePath(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = std::min(path.find('/', start), path.size());
    std::string_view part = path.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

bool MakeDirs(const std::string& dir, std::string* err) {
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    *err = "making " + dir + ": " + ec.message();
    return false;
  }
  return true;
}

bool ListFiles(const std::string& dir, std::vector<std::string>* files, std::string* err) {
  files->clear();
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 && errno == ENOENT) return true;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    // is_regular_file follows a symlink; a symlinked folder is not entered (no cycles).
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    files->push_back(it->path().lexically_relative(dir).generic_string());
  }
  if (ec) {
    *err = "listing " + dir + ": " + ec.message();
    return false;
  }
  std::sort(files->begin(), files->end());
  return true;
}

bool CopyContent(int in, int out, const std::string& what, std::string* err) {
  if (ioctl(out, FICLONE, in) == 0) return true;
  if (lseek(in, 0, SEEK_SET) != 0) {
    *err = ErrnoText("copying " + what, errno);
    return false;
  }
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, kCopyChunk, 0);
    if (n == 0) return true;
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) break;
    *err = ErrnoText("copying " + what, errno);
    return false;
  }
  // Offsets advanced together so far: the plain copy goes on from there.
  if (!CopyPlain(in, out)) {
    *err = ErrnoText("copying " + what, errno);
    return false;
  }
  return true;
}

namespace {

// Copies `in` into the new file `out` (named `dest` in errors), gives it `mode`, and closes it.
bool FillAndClose(int in, int out, const std::string& dest, mode_t mode, std::string* err) {
  bool ok = CopyContent(in, out, dest, err);
  if (ok && fchmod(out, mode) != 0) {
    *err = ErrnoText("setting the mode of " + dest, errno);
    ok = false;
  }
  if (close(out) != 0 && ok) {
    *err = ErrnoText("writing " + dest, errno);
    ok = false;
  }
  return ok;
}

}  // namespace

bool CopyToNewFile(int in, const std::string& dest, mode_t mode, std::string* err) {
  int out = open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    *err = ErrnoText("creating " + dest, errno);
    return false;
  }
  bool ok = FillAndClose(in, out, dest, mode, err);
  if (!ok) unlink(dest.c_str());
  return ok;
}

bool ReplaceFile(int in, const std::string& dest, mode_t mode, std::string* err) {
  size_t slash = dest.rfind('/');
  std::string temp = dest.substr(0, slash + 1) + "." +
                     dest.substr(slash == std::string::npos ? 0 : slash + 1) + ".cache-XXXXXX";
  int out = MakeTemp(&temp);
  if (out < 0) {
    *err = ErrnoText("creating a file in " + ParentOf(dest), errno);
    return false;
  }
  bool ok = FillAndClose(in, out, dest, mode, err);
  if (ok && rename(temp.c_str(), dest.c_str()) != 0) {
    *err = ErrnoText("replacing " + dest, errno);
    ok = false;
  }
  if (!ok) unlink(temp.c_str());
  return ok;
}

bool WriteFileVia(const std::string& temp_dir, const std::string& dest, std::string_view bytes,
                  std::string* err) {
  std::string temp = temp_dir + "/w.XXXXXX";
  int fd = MakeTemp(&temp);
  if (fd < 0) {
    *err = ErrnoText("creating a file in " + temp_dir, errno);
    return false;
  }
  bool ok = WriteAll(fd, bytes.data(), bytes.size()) && fchmod(fd, 0644) == 0;
  if (!ok) *err = ErrnoText("writing " + temp, errno);
  if (close(fd) != 0 && ok) {
    *err = ErrnoText("writing " + temp, errno);
    ok = false;
  }
  if (ok && rename(temp.c_str(), dest.c_str()) != 0) {
    *err = ErrnoText("renaming to " + dest, errno);
    ok = false;
  }
  if (!ok) unlink(temp.c_str());
  return ok;
}

int ReadAt(int dirfd, const std::string& name, std::string* content, uint64_t limit) {
  content->clear();
  int fd = openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno;
  struct stat st {};
  int error = fstat(fd, &st) != 0 ? errno : (S_ISREG(st.st_mode) ? 0 : EINVAL);
  if (error == 0 && static_cast<uint64_t>(st.st_size) > limit) error = EFBIG;
  char buffer[16384];
  while (error == 0) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno != EINTR) error = errno;
      continue;
    }
    if (content->size() + static_cast<size_t>(n) > limit) error = EFBIG;
    content->append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return error;
}

uint64_t TreeBytes(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (!S_ISDIR(st.st_mode)) return 0;
  uint64_t bytes = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(path, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  return bytes;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace chainctl::daemon::cache_files
