// The cache of http(s) task inputs (DESIGN.md §5 "Cache invalidation"): a folder of downloaded
// URLs, each kept with the validators its server gave (ETag, Last-Modified), revalidated at
// every use with a conditional GET, under an LRU size budget and a TTL.
//
//   - Fetch(url, dest): a cached entry is revalidated (If-None-Match / If-Modified-Since): a 304
//     reuses it (a hit); anything else downloads it again (a miss): a 200 replaces the entry
//     (new ETag and all). A server that sends neither ETag nor Last-Modified gives nothing to
//     revalidate with, so such a URL is downloaded again at every Fetch.
//   - Downloads go to a temporary file "tmp.*" in the cache folder and are renamed into place
//     only when complete: a failed download (connection refused, HTTP error, a body shorter
//     than its Content-Length, a dead server: < 1 KiB/s for 30 s) leaves no entry, and the
//     error names the URL and the reason ("GET http://h/x: 404 Not Found").
//   - The file is hard-linked from the cache into `dest` (copied if `dest` is on another file
//     system) before the entry can be evicted: a cached entry under the index lock, a new one
//     before it enters the index. Evicting an entry only unlinks the cache's name. Cached files are
//     made read-only (0444): the task's link shares the inode, and a task must not write to its
//     inputs.
//   - Budget: after every insertion and at Trim, entries are removed least recently used
//     first until the total is ≤ max_bytes; an entry bigger than the whole budget is linked
//     into `dest` and not kept. Trim also removes entries unused for longer than ttl_ms.
//
// Layout of the folder (version 1): for each URL, "<sha256(url)>" holds the body and
// "<sha256(url)>.meta" the JSON {"v": 1, "url", "etag", "last_modified", "size"}. An entry is
// complete when both exist and the sizes agree; at start, incomplete entries and leftover
// "tmp.*" files are removed. Entries found at start count as used at that moment.
//
// Only http and https are fetched (also through redirects, at most 5); other schemes are
// refused. Thread-safe: Fetch may run on several threads at once; downloads of different URLs
// run concurrently, Fetches of one URL one after the other (a mutex per URL), and the index is
// guarded by one mutex. Blocking: call it off the event loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace chainctl::daemon {

struct InputCacheOptions {
  std::string dir;                  // the cache folder (made 0700 if missing)
  uint64_t max_bytes = 1ull << 30;  // LRU size budget of the cache
  int64_t ttl_ms = 3'600'000;       // entries unused longer than this are removed by Trim
  // Local inputs: false forbids hard links (reflink, else copy) even for a task that declares
  // `inputs.link`. For tests of the copy path.
  bool hardlink_local = true;
};

// Milliseconds on some clock (default: Unix time); injectable for tests of the TTL.
using CacheClock = std::function<int64_t()>;

// What Fetch placed in `dest`.
struct FetchedFile {
  uint64_t size = 0;
  uint64_t inode = 0, device = 0;   // of `dest` (the cache entry's, when linked)
  std::string etag, last_modified;  // the validators of the entry ("" if the server sent none)
  bool downloaded = false;          // false: a 304 reused the cached entry
  bool linked = true;  // `dest` is a hard link to the entry (false: a copy, other file system)
};

// The outcome of a conditional GET against validators recorded earlier.
enum class Revalidation { kFresh, kStale, kError };

class HttpCache {
 public:
  // Creates the folder if missing (0700) and loads the entries found in it; an error there is
  // kept and returned by every Fetch.
  HttpCache(InputCacheOptions options, CacheClock clock);
  ~HttpCache();
  HttpCache(const HttpCache&) = delete;
  HttpCache& operator=(const HttpCache&) = delete;

  // Makes `dest` (replaced if it exists) a hard link to the fresh content of `url` (a copy if
  // `dest` is on another file system than the cache), downloading or revalidating as the header
  // says.
  bool Fetch(const std::string& url, const std::string& dest, FetchedFile* out, std::string* err);

  // A conditional GET with `etag` / `last_modified` (as recorded when staged): a 304 is kFresh;
  // any other answer is kStale (its body is not read), with *why saying what came back; a
  // transfer failure is kError. Without validators there is nothing to ask: kStale. Does not
  // change the cache.
  Revalidation Revalidate(const std::string& url, const std::string& etag,
                          const std::string& last_modified, std::string* why);

  // {"entries", "bytes", "max_bytes", "hits" (304s), "misses" (downloads), "evictions" (over
  // budget), "expirations" (past the TTL)}.
  nlohmann::json Stats() const;

  // Removes entries past the TTL, then least recently used ones until within the budget.
  void Trim();

 private:
  struct Entry {
    std::string key;  // sha256(url): the file names
    std::string etag, last_modified;
    uint64_t size = 0;
    int64_t last_used_ms = 0;
  };

  bool Load(std::string* err);
  bool ReadMeta(const std::string& key, std::string* url, Entry* entry) const;
  std::shared_ptr<std::mutex> UrlMutex(const std::string& url);
  bool Download(const std::string& url, const Entry* cached, const std::string& dest,
                FetchedFile* out, std::string* err);
  bool Insert(const std::string& url, const Entry& entry, const std::string& tmp,
              const std::string& meta_text, std::string* err);
  bool LinkEntry(const std::string& url, const std::string& dest, FetchedFile* out,
                 std::string* err);
  void RemoveLocked(std::map<std::string, Entry>::iterator it);
  void TrimLocked(bool expire);
  std::string DataPath(const std::string& key) const;

  const InputCacheOptions options_;
  const CacheClock clock_;
  std::string init_error_;  // set once by the constructor

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by URL; guarded by mu_
  // One per URL being fetched, dropped when its last user is done; guarded by mu_.
  std::map<std::string, std::shared_ptr<std::mutex>> url_mutexes_;
  uint64_t bytes_ = 0;                                                // guarded by mu_
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0, expirations_ = 0;  // guarded by mu_
};

}  // namespace chainctl::daemon
