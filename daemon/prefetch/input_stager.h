// Staging of a task's `inputs.files` (DESIGN.md §3, §5 "stage" prewarm and "Cache
// invalidation"): before a task starts, $CHAIN_WORKDIR/inputs/files/ holds each declared input
// under its base name; the prefetcher stages ahead of time and re-checks at use, so a stale
// staged input is never handed to a task.
//
// Inputs are absolute local paths or glob(3) patterns (matches sorted; a pattern matching
// nothing is an error; the caller resolves paths relative to the chain file first), or http(s)
// URLs. A directory is refused: stage its files with a glob. Every input lands in `dest` under
// its base name (for a URL, the last segment of its path); two inputs with the same name are an
// error naming both.
//   - Local files are reflinked (FICLONE), else copied; a copy gets the source's mtime. A task
//     that declares `inputs.link: true` (it does not write its inputs) gets hard links instead,
//     sharing the inode: no copy, but it sees later in-place changes of the source, and what
//     it wrote to the file would reach the source (issue 15 item 10: without the declaration a
//     task appending to a staged file changed the user's). Then posix_fadvise(WILLNEED) reads
//     ahead.
//     A copy reads at most the size the file says it has: one that gives more (the files under
//     /proc and /sys say 0; /proc/kmsg never ends) is refused, never read for ever.
//   - URLs go through the HttpCache (http_cache.h): downloaded or revalidated, then linked from
//     the cache into `dest`, and, without `link`, made a file of their own (reflink or copy),
//     so that a task cannot change the cache.
// A staged file is fresh while its source has the (size, mtime, inode, device) recorded at
// staging, a copy in `dest` still has the source's size and mtime, a linked file in `dest`
// still is that inode, and, for a URL, its file in `dest` is unchanged and the server answers
// a conditional GET with 304 (a URL whose server sent no ETag or Last-Modified is never
// fresh). A glob that now matches another set of files is stale too.
//
// Thread-safe: Stage, StillFresh, Stats and Trim may run on any threads at once (the
// orchestrator calls them on the libuv thread pool). Stage and StillFresh block (disk and
// network): never call them on the event loop. Concurrent Stage calls must use different
// `dest` folders.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/prefetch/http_cache.h"

namespace chainctl::daemon {

// One staged input: where it came from and what it was when staged.
struct StagedFile {
  std::string input;   // the declared input it came from (a glob stands for several files)
  std::string source;  // absolute local path, or the URL
  std::string path;    // where it was placed (under the destination folder)
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0, device = 0;   // of the source (local) or of the file in dest (URL)
  bool linked = false;              // hardlinked (shares the inode) rather than copied or reflinked
  std::string etag, last_modified;  // URLs only
};

// Asked on the staging thread before each input and between the 1 MiB chunks of a copy: true
// stops the staging, which then fails with "cancelled" (issue 15 item 9: a run staging a huge
// file could be neither cancelled nor shut down). Must be thread-safe; empty: never.
using StageCancelled = std::function<bool()>;

struct StageResult {
  bool ok = false;
  std::string error;  // one line: which input and why ("/d/*.csv matches no file", ...)
  std::vector<StagedFile> files;
  uint64_t bytes = 0;         // total size of the staged inputs
  uint64_t bytes_copied = 0;  // bytes copied or downloaded (0: all linked, reflinked or 304)
};

class InputStager {
 public:
  // `clock` (ms) decides the cache's LRU order and TTL; default: Unix time.
  explicit InputStager(InputCacheOptions options, CacheClock clock = nullptr);

  // Resolves `inputs` and makes `dest` (created) hold each one under its base name; other
  // files already in `dest` (from an earlier staging) are removed. Blocking. The error names
  // files, whose names are bytes: bytes that are not UTF-8 in it are written \xHH
  // (PrintableBytes), so that it can be a task's cause in JSON. `link`: the task declared that
  // it does not write its inputs (`inputs.link`), so hard links may be used.
  StageResult Stage(const std::vector<std::string>& inputs, const std::string& dest, bool link,
                    const StageCancelled& cancelled = {});

  // Re-checks, at use, files staged earlier by Stage(inputs, ...): true if every one is fresh
  // (see the header comment); else false with *why naming the first stale input ("/d/a.csv
  // changed since it was staged (mtime)"; printable as Stage's error). Blocking (a conditional
  // GET per URL).
  bool StillFresh(const std::vector<std::string>& inputs, const StageResult& staged,
                  std::string* why);

  // The cache's figures (HttpCache::Stats).
  nlohmann::json Stats() const;

  // Removes cache entries past the TTL or over the size budget (least recently used first).
  void Trim();

 private:
  StageResult StageFiles(const std::vector<std::string>& inputs, const std::string& dest, bool link,
                         const StageCancelled& cancelled);
  std::string Staleness(const std::vector<std::string>& inputs, const StageResult& staged);
  std::string UrlStaleness(const StagedFile& file);

  const bool hardlink_local_;
  HttpCache cache_;
};

// Places the local regular file `source` at `dest` (replacing it): a hard link if
// `allow_hardlink` and the file system allows it, else a reflink, else a copy with the
// source's mode and mtime. Fills *file (identity of the source) and adds the bytes copied to
// *bytes_copied. Fails if the source changed while it was copied, or "cancelled" if
// `cancelled` says so between chunks (the partial copy is removed).
bool PlaceLocalFile(const std::string& source, const std::string& dest, bool allow_hardlink,
                    StagedFile* file, uint64_t* bytes_copied, std::string* err,
                    const StageCancelled& cancelled = {});

}  // namespace chainctl::daemon
