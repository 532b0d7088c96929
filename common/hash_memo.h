// HashMemo: file content hashes remembered by what stat(2) says of the file, so that hashing an
// unchanged tree costs a stat per file, not a read (git's index, ccache's manifest).
//
// An entry is trusted only while the file's (size, mtime_ns, ctime_ns, inode, dev) are exactly
// those recorded for its path. A rewrite changes mtime and ctime; a rename-over changes the
// inode; a `touch -d` back in time still changes ctime.
//
// Racy timestamps (git's "racy git"): a file written, hashed, then written again within the file
// system's timestamp granularity (ext4 takes the kernel's coarse clock, a jiffy; FAT 2 s; NFS
// the server's clock) can keep size, mtime and ctime while its content changed. Rule: Store()
// keeps an entry only when the file's newest timestamp, max(mtime, ctime), is older than
// `racy_window_ns` (default 2 s) before the time its hash began (the caller's `hash_start_ns`,
// from the memo's clock). Any later write then gets a timestamp past the recorded one. Such a
// young file is hashed (and read) again each time until it is old enough.
//
// Bounded: at most `max_entries` entries; storing one more drops the least recently used.
//
// Thread safety: every member may be called from any thread at once; `mutex_` guards the entries,
// their recency order and the counters. No libuv.
//
// File format (Save/Load), little-endian, all integers fixed width:
//   "chainctl-hash-memo\n" u32 version (1) u32 count
//   count × { u64 size, i64 mtime_ns, i64 ctime_ns, u64 inode, u64 dev, u64 hash_high,
//             u64 hash_low, u32 path_length, path bytes }          (least recently used first)
//   u64 XXH3-64 of everything before it
// Written whole to a temporary file in the same folder, then renamed over: readers see the old or
// the new file, never a part. Not fsync'd: a memo lost or torn in a crash fails the checksum and
// is rebuilt, at the cost of reads.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/file_hash.h"

namespace chainctl {

// What the memo compares of a file (from stat(2), following symlinks).
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  uint64_t dev = 0;
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
  static FileStamp Of(const struct stat& st);
};

class HashMemo {
 public:
  struct Options {
    size_t max_entries = 200'000;
    int64_t racy_window_ns = 2'000'000'000;
    // Wall-clock time in ns since the epoch (the clock file timestamps use); tests replace it.
    std::function<int64_t()> clock;
  };

  HashMemo();
  explicit HashMemo(Options options);

  // The time to pass to Store() as `hash_start_ns`: read it before stat'ing the file.
  int64_t Now() const;

  // The hash recorded for `path` (an absolute path) if `stamp` is exactly the recorded one.
  std::optional<Hash128> Lookup(const std::string& path, const FileStamp& stamp);
  // Records `hash` for `path` with `stamp`, unless the stamp is racy (above). Returns whether it
  // was kept.
  bool Store(const std::string& path, const FileStamp& stamp, const Hash128& hash,
             int64_t hash_start_ns);

  // Replaces the entries with those of the file `path`. A missing, unreadable, corrupt or other
  // version's file leaves the memo empty and returns false with the reason in *why (for a log
  // line; never an error to the caller's caller).
  bool Load(const std::string& path, std::string* why = nullptr);
  // Writes all entries to `path` (temporary file, then rename). False with *err on an I/O error.
  bool Save(const std::string& path, std::string* err) const;

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Entry {
    std::string path;
    FileStamp stamp;
    Hash128 hash;
  };
  void InsertLocked(Entry entry);  // most recent; drops the oldest beyond max_entries

  Options options_;
  mutable std::mutex mutex_;
  std::list<Entry> order_;  // least recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_path_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace chainctl
