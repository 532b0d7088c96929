// TaskCache: the results of cached tasks on disk, by cache key (DESIGN.md §4 "Cache"),
// content-addressed, shareable between concurrent chainds and CI jobs (a CI job restores the
// folder, e.g. with actions/cache, and gets hits), within an LRU size budget.
//
// Layout under `dir` (STATE/task-cache, or chaind --cache-dir / $CHAINCTL_CACHE_DIR; not below
// STATE/cache, the input cache's folder, which removes files it does not know at start):
//   entries/KK/KEY/          one entry per key (KEY: Hash128::Hex(), KK its first 2 digits)
//     manifest.json          {"format": 1, "key", "created_unix_ms", "output" (the task's
//                            output JSON), "info" (the caller's, e.g. what the key was made of),
//                            "files": [{"kind": "out"|"project", "path", "size", "hash", "mode"}],
//                            "checksum" (XXH3-128 hex of the manifest without this field)}
//                            "path": relative, `/`-separated, no empty, "." or ".." component;
//                            "hash": XXH3-128 hex of the content; "mode": permission bits (≤ 0777);
//                            the checksum is over DumpJson's text (compact, keys sorted)
//     out/PATH               the task's $CHAIN_OUTDIR files
//     project/PATH           its declared `outputs` (paths relative to the chain's folder)
//   tmp/                     entries being written and entries being removed (what is older than
//                            a day there was left by a dead chaind: Open removes it)
//   last/NAME.json           the key parts a task last ran with (RecordLast), for --explain
// An entry is written whole in tmp/ and renamed into place: readers see all of it or nothing.
// Two writers of one key: the first rename wins, the other's copy is dropped (same content by
// construction). Removal renames the entry into tmp/ first, then deletes it. Recency (LRU) is
// the manifest's mtime, set on each hit.
//
// Trust: nothing read back is used unchecked. A manifest that does not parse, whose checksum is
// wrong or that lists an unsafe path, or a file missing or whose size or XXH3-128 differs from
// the manifest's, makes the entry corrupt: Restore reports it (kCorrupt), removes the entry and
// restores nothing into the project or out/ (files are checked before any is put in place).
//
// Thread safety: every member may be called from any thread at once (the daemon calls them on
// the thread pool; they block on file I/O, never call them on the loop). The size estimate is
// atomic; everything else is on disk.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/chain/chain.h"
#include "common/file_hash.h"

namespace chainctl::daemon {

// Why the results of `task` (caching on: TaskSpec::Cached) cannot be cached, or "" if they can:
// a chain posted without its folder has no sources to find; staged inputs.files are not part of
// the key.
std::string WhyNotCacheable(const TaskSpec& task);

class TaskCache {
 public:
  struct Options {
    std::string dir;
    uint64_t max_bytes = 5ull << 30;  // LRU budget; Store prunes beyond it
  };

  // Where a result is and what to put back.
  struct Places {
    std::string outdir;       // the task's $CHAIN_OUTDIR (Store reads it, Restore fills it)
    std::string project_dir;  // the chain's folder: `outputs` globs are relative to it
  };

  enum class Lookup { kHit, kMiss, kCorrupt };

  struct Stats {
    uint64_t entries = 0;
    uint64_t bytes = 0;  // of the entries' files and manifests
    std::string dir;
    uint64_t max_bytes = 0;
  };

  explicit TaskCache(Options options);

  // Makes the folders if missing and estimates the size (a scan). False with *err when the folder
  // cannot be made or written.
  bool Open(std::string* err);

  // Looks `key` up; on a hit, checks every file, then copies the out/ files into places.outdir
  // and writes each `project` file over its path below places.project_dir (a temporary file and
  // a rename, mode kept), sets *output and *info, and marks the entry recently used. kMiss: no
  // entry. kCorrupt: an entry that fails a check (*why says which), removed; nothing restored.
  // A restore that fails half way (disk full) is reported as kMiss with *why, places.outdir
  // emptied again: the task runs (project files already replaced are rewritten by it).
  Lookup Restore(const Hash128& key, const Places& places, nlohmann::json* output,
                 nlohmann::json* info, std::string* why);

  // Stores a task's result under `key`: its `output`, the files below places.outdir, and the
  // project files the `outputs` globs match (a declared output that matches nothing is no
  // error). `info` is kept as is. Then prunes to the budget. False with *err on an I/O error
  // or a bad glob (nothing is left behind).
  bool Store(const Hash128& key, const Places& places, const std::vector<std::string>& outputs,
             const nlohmann::json& output, const nlohmann::json& info, std::string* err);

  // The key parts a task last ran with, by a name the caller makes (e.g. chain and task id):
  // for `run --explain`. RecordLast replaces it (temporary file and rename); ReadLast gives
  // nullopt if there is none or it does not parse.
  bool RecordLast(const std::string& name, const nlohmann::json& parts, std::string* err);
  std::optional<nlohmann::json> ReadLast(const std::string& name) const;
  // The name the daemon keeps a task's last key parts under (the orchestrator records them, the
  // prefetcher's forecast reads them).
  static std::string LastName(const std::string& chain_id, const std::string& task_id) {
    return chain_id + "." + task_id;
  }

  // A scan of the entries (chainctl cache stats).
  Stats Scan() const;
  // Removes the least recently used entries until at most `max_bytes` remain; returns how many
  // were removed (and their bytes in *bytes if given).
  uint64_t Prune(uint64_t max_bytes, uint64_t* bytes = nullptr);
  // Removes every entry (chainctl cache clear).
  uint64_t Clear(uint64_t* bytes = nullptr);

  const std::string& dir() const { return options_.dir; }
  uint64_t max_bytes() const { return options_.max_bytes; }

 private:
  // An entry found by a scan.
  struct EntryInfo {
    std::string path;     // entries/KK/KEY
    int64_t used_ns = 0;  // its manifest's mtime (0: none): when last stored or restored
    uint64_t bytes = 0;   // of its regular files
  };

  std::string EntryPath(const Hash128& key) const;
  std::string TempDir() const;
  std::string LastPath(const std::string& name) const;  // last/<readable prefix>-<hash>.json
  // Renames the complete entry `stage` into place (*published). Another writer's entry there
  // first is no error: true, *published left false. False with *err on an I/O error.
  bool Publish(const std::string& stage, const Hash128& key, bool* published, std::string* err);
  // Renames `entry` into tmp/, then deletes it. False if it was not there (removed meanwhile).
  bool RemoveEntry(const std::string& entry) const;
  std::vector<EntryInfo> ListEntries() const;
  void RemoveStaleTemps() const;

  Options options_;
  std::atomic<uint64_t> estimate_{0};  // bytes, from Open's scan plus what Store added
};

}  // namespace chainctl::daemon
