// HashSources: the digest of the files a task's `sources:` globs match (DESIGN.md §4 "Cache"),
// the part of a task's cache key that stands for its input files.
//
// The digest is XXH3-128 over, for each matched file in bytewise order of its relative path,
// (u64 path length, path, its 16-byte content hash), after a version tag: so a changed byte, a
// renamed, added or removed file each change it, and nothing else does (not the globs that found
// the files, not timestamps, not the base folder's absolute path).
//
// Symlinks: a link to a file is hashed as the target's content (the path is the link's); a
// dangling link matches nothing. A file that vanishes between the listing and its read is an
// error naming it; a file whose size or timestamps change while it is read is read again (up to
// 3 times), then an error.
//
// Runs on chaind's thread pool, several at once: it touches nothing shared but `memo` (which is
// thread-safe) and no libuv. Blocking file I/O: never call it on the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/file_hash.h"
#include "common/hash_memo.h"
#include "common/source_glob.h"

namespace chainctl {

struct SourceFile {
  std::string path;  // relative to the base folder, `/`-separated
  Hash128 hash;      // of its content
  uint64_t size = 0;
};

struct SourcesDigest {
  Hash128 digest;
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::vector<SourceFile> entries;  // sorted by path: what `--explain` compares
  // The work it took (counted, for tests and stats): files read and their bytes; the others had
  // their hash from the memo for the cost of a stat.
  uint64_t files_read = 0;
  uint64_t bytes_read = 0;
};

// Hashes the files `globs` match below `base` (the chain file's folder; made absolute with
// realpath(3), and memo keys are absolute paths). `memo` may be null (everything is read).
// Returns false with *err on a bad glob, a limit passed (GlobLimits: 100,000 files), an
// unreadable base, or a file that cannot be read.
bool HashSources(const std::string& base, const std::vector<std::string>& globs, HashMemo* memo,
                 SourcesDigest* out, std::string* err);
bool HashSources(const std::string& base, const std::vector<std::string>& globs,
                 const GlobLimits& limits, HashMemo* memo, SourcesDigest* out, std::string* err);

}  // namespace chainctl
