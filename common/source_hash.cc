#include "common/source_hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
// XXH3_state_t on the stack (its layout is stable since xxHash 0.8.0).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace chainctl {
namespace {

constexpr char kDigestTag[] = "chainctl-sources-v1";
constexpr int kReadTries = 3;

std::string ErrnoText(int error) { return std::strerror(error); }

// Reads and hashes one file. Returns 0, or an errno: ENOENT when it vanished, EAGAIN when it kept
// changing while read. Sets *stamp to what fstat said before the read.
int ReadAndHash(const std::string& full, char* buffer, FileStamp* stamp, Hash128* hash,
                uint64_t* bytes) {
  for (int attempt = 0; attempt < kReadTries; ++attempt) {
    // O_NONBLOCK: a FIFO put where a source was must not block the pool thread in open().
    int fd = open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno;
    struct stat before {
    }, after{};
    int error = fstat(fd, &before) != 0 ? errno : (S_ISREG(before.st_mode) ? 0 : EINVAL);
    if (error == 0) error = HashFd(fd, buffer, kHashReadBuffer, hash, bytes);
    if (error == 0 && fstat(fd, &after) != 0) error = errno;
    close(fd);
    if (error != 0) return error;
    *stamp = FileStamp::Of(before);
    if (*stamp == FileStamp::Of(after) && *bytes == stamp->size) return 0;
  }
  return EAGAIN;
}

// The content hash of base/rel, from the memo for a stat if it is there. Counts reads in *out.
bool HashOne(const std::string& full, const std::string& rel, HashMemo* memo, char* buffer,
             SourceFile* file, SourcesDigest* out, std::string* err) {
  int64_t start = memo ? memo->Now() : 0;  // before the stat: see HashMemo's racy rule
  struct stat st {};
  if (stat(full.c_str(), &st) != 0) {
    *err = "source " + rel + " vanished while hashed: " + ErrnoText(errno);
    return false;
  }
  file->path = rel;
  if (memo && S_ISREG(st.st_mode)) {
    if (auto hash = memo->Lookup(full, FileStamp::Of(st))) {
      file->hash = *hash;
      file->size = static_cast<uint64_t>(st.st_size);
      return true;
    }
  }
  FileStamp stamp;
  uint64_t bytes = 0;
  int error = ReadAndHash(full, buffer, &stamp, &file->hash, &bytes);
  if (error != 0) {
    *err = "source " + rel +
           (error == ENOENT   ? " vanished while hashed"
            : error == EAGAIN ? " kept changing while hashed"
                              : " cannot be hashed: " + ErrnoText(error));
    return false;
  }
  file->size = bytes;
  ++out->files_read;
  out->bytes_read += bytes;
  if (memo) memo->Store(full, stamp, file->hash, start);
  return true;
}

Hash128 Digest(const std::vector<SourceFile>& entries) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, kDigestTag, sizeof(kDigestTag));
  for (const SourceFile& f : entries) {
    uint64_t length = f.path.size();
    uint64_t words[2] = {f.hash.high, f.hash.low};
    XXH3_128bits_update(&state, &length, sizeof(length));
    XXH3_128bits_update(&state, f.path.data(), f.path.size());
    XXH3_128bits_update(&state, words, sizeof(words));
  }
  XXH128_hash_t h = XXH3_128bits_digest(&state);
  return Hash128{h.high64, h.low64};
}

}  // namespace

bool HashSources(const std::string& base, const std::vector<std::string>& globs, HashMemo* memo,
                 SourcesDigest* out, std::string* err) {
  return HashSources(base, globs, GlobLimits{}, memo, out, err);
}

bool HashSources(const std::string& base, const std::vector<std::string>& globs,
                 const GlobLimits& limits, HashMemo* memo, SourcesDigest* out, std::string* err) {
  *out = SourcesDigest{};
  char resolved[PATH_MAX];
  if (!realpath(base.c_str(), resolved)) {
    *err = "sources folder " + base + ": " + ErrnoText(errno);
    return false;
  }
  std::string root = resolved;
  std::vector<std::string> paths;
  if (!ExpandSourceGlobs(root, globs, limits, &paths, err)) return false;
  auto buffer = std::make_unique<char[]>(kHashReadBuffer);
  out->entries.resize(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    std::string full = root == "/" ? "/" + paths[i] : root + "/" + paths[i];
    if (!HashOne(full, paths[i], memo, buffer.get(), &out->entries[i], out, err)) return false;
    out->bytes += out->entries[i].size;
  }
  out->files = out->entries.size();
  out->digest = Digest(out->entries);
  return true;
}

}  // namespace chainctl
