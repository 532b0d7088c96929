#include "daemon/prefetch/http_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/prefetch/http_get.h"
#include "daemon/prefetch/input_stager.h"
#include "daemon/util/content_hash.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;

constexpr int kMetaVersion = 1;

int64_t UnixMsNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// A new empty file "tmp.XXXXXX" in `dir`; its descriptor, or -1 with *err.
int MakeTemp(const std::string& dir, std::string* path, std::string* err) {
  std::vector<char> name(dir.begin(), dir.end());
  const std::string suffix = "/tmp.XXXXXX";
  name.insert(name.end(), suffix.begin(), suffix.end());
  name.push_back('\0');
  int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    *err = Errno("creating a file in " + dir);
    return -1;
  }
  *path = name.data();
  return fd;
}

// Replaces `dest` (if it exists) by a hard link to `from`, or a copy if `dest` is on another
// file system (*linked false).
bool LinkReplacing(const std::string& from, const std::string& dest, bool* linked,
                   std::string* err) {
  *linked = true;
  if (unlink(dest.c_str()) != 0 && errno != ENOENT) {
    *err = Errno("removing " + dest);
    return false;
  }
  if (link(from.c_str(), dest.c_str()) == 0) return true;
  if (errno != EXDEV) {
    *err = Errno("linking " + dest);
    return false;
  }
  *linked = false;
  StagedFile ignored;
  uint64_t copied = 0;
  return PlaceLocalFile(from, dest, /*allow_hardlink=*/false, &ignored, &copied, err);
}

bool StatOf(const std::string& path, struct stat* st, std::string* err) {
  if (stat(path.c_str(), st) == 0) return true;
  *err = Errno(path);
  return false;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The entry a file of the folder belongs to: "K.meta" → "K"; any other name is its own.
std::string KeyOf(const std::string& name) {
  constexpr std::string_view kMeta = ".meta";
  bool meta = name.size() > kMeta.size() && name.ends_with(kMeta);
  return meta ? name.substr(0, name.size() - kMeta.size()) : name;
}

}  // namespace

HttpCache::HttpCache(InputCacheOptions options, CacheClock clock)
    : options_(std::move(options)), clock_(clock ? std::move(clock) : CacheClock(UnixMsNow)) {
  std::string err;
  if (!Load(&err)) init_error_ = "input cache " + options_.dir + ": " + err;
}

HttpCache::~HttpCache() = default;

std::string HttpCache::DataPath(const std::string& key) const { return options_.dir + "/" + key; }

// The complete entry `key` (metadata of this version, a body of the size it says).
bool HttpCache::ReadMeta(const std::string& key, std::string* url, Entry* entry) const {
  nlohmann::json meta = nlohmann::json::parse(ReadSmallFile(DataPath(key) + ".meta"), nullptr,
                                              /*allow_exceptions=*/false);
  struct stat st {};
  try {
    if (!meta.is_object() || meta.at("v").get<int>() != kMetaVersion ||
        stat(DataPath(key).c_str(), &st) != 0 ||
        meta.at("size").get<uint64_t>() != static_cast<uint64_t>(st.st_size)) {
      return false;
    }
    *url = meta.at("url").get<std::string>();
    *entry =
        Entry{key, meta.at("etag").get<std::string>(), meta.at("last_modified").get<std::string>(),
              static_cast<uint64_t>(st.st_size), clock_()};
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return !url->empty();
}

bool HttpCache::Load(std::string* err) {
  if (options_.dir.empty()) {
    *err = "no folder given";
    return false;
  }
  if (mkdir(options_.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *err = std::strerror(errno);
    return false;
  }
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(options_.dir, ec)) {
    names.push_back(item.path().filename().string());
  }
  if (ec) {
    *err = ec.message();
    return false;
  }
  std::lock_guard lock(mu_);
  std::set<std::string> keys_kept;
  for (const std::string& name : names) {
    std::string key = KeyOf(name);
    if (key == name) continue;  // not metadata
    Entry entry;
    std::string url;
    if (!ReadMeta(key, &url, &entry)) continue;
    bytes_ += entry.size;
    entries_[url] = entry;
    keys_kept.insert(key);
  }
  // Everything else (temporary files, incomplete entries) goes.
  for (const std::string& name : names) {
    if (!keys_kept.count(KeyOf(name))) unlink(DataPath(name).c_str());
  }
  TrimLocked(/*expire=*/false);
  return true;
}

std::shared_ptr<std::mutex> HttpCache::UrlMutex(const std::string& url) {
  std::lock_guard lock(mu_);
  auto& mutex = url_mutexes_[url];
  if (!mutex) mutex = std::make_shared<std::mutex>();
  return mutex;
}

bool HttpCache::Fetch(const std::string& url, const std::string& dest, FetchedFile* out,
                      std::string* err) {
  if (!init_error_.empty()) {
    *err = init_error_;
    return false;
  }
  std::shared_ptr<std::mutex> url_mutex = UrlMutex(url);
  bool ok = false;
  {
    std::lock_guard url_lock(*url_mutex);
    std::optional<Entry> cached;
    {
      std::lock_guard lock(mu_);
      auto it = entries_.find(url);
      if (it != entries_.end()) cached = it->second;
    }
    // Without validators there is nothing to revalidate with: downloaded again.
    if (cached && cached->etag.empty() && cached->last_modified.empty()) cached.reset();
    ok = Download(url, cached ? &*cached : nullptr, dest, out, err);
  }
  std::lock_guard lock(mu_);
  if (url_mutex.use_count() == 2) url_mutexes_.erase(url);  // nobody else waits on it
  return ok;
}

// One GET, conditional if `cached`: a 304 links the cached entry; a 200 is written to a
// temporary file that becomes the entry (or, over the budget, is only linked into `dest`).
bool HttpCache::Download(const std::string& url, const Entry* cached, const std::string& dest,
                         FetchedFile* out, std::string* err) {
  std::string tmp;
  int fd = MakeTemp(options_.dir, &tmp, err);
  if (fd < 0) return false;
  HttpGetRequest request{url, cached ? cached->etag : "", cached ? cached->last_modified : "", fd};
  HttpGetResponse response;
  bool answered = HttpGet(request, &response, err);
  bool closed = close(fd) == 0;
  if (answered && cached && response.status == 304) {
    unlink(tmp.c_str());
    if (LinkEntry(url, dest, out, err)) return true;
    if (!err->empty()) return false;
    return Download(url, nullptr, dest, out, err);  // evicted meanwhile: fetched whole
  }
  if (answered && response.status != 200) {
    *err = "GET " + url + ": " + response.reason;
    answered = false;
  }
  if (answered && (!closed || chmod(tmp.c_str(), 0444) != 0)) {
    *err = Errno("writing " + tmp);
    answered = false;
  }
  bool linked = true;
  if (answered) answered = LinkReplacing(tmp, dest, &linked, err);
  struct stat st {};
  if (answered) answered = StatOf(dest, &st, err);
  if (!answered) {
    unlink(tmp.c_str());
    return false;
  }
  *out = FetchedFile{response.body_bytes,
                     static_cast<uint64_t>(st.st_ino),
                     static_cast<uint64_t>(st.st_dev),
                     response.etag,
                     response.last_modified,
                     /*downloaded=*/true,
                     linked};
  std::string key;
  if (!Sha256Hex(url, &key, err)) {
    unlink(tmp.c_str());
    return false;
  }
  Entry entry{key, response.etag, response.last_modified, response.body_bytes, clock_()};
  std::string meta_text = nlohmann::json{
      {"v", kMetaVersion},
      {"url", url},
      {"etag", entry.etag},
      {"last_modified", entry.last_modified},
      {"size", entry.size}}.dump();
  return Insert(url, entry, tmp, meta_text, err);
}

// Makes the downloaded file `tmp` the entry of `url`, its metadata `meta_text`. Over the budget
// it is dropped instead (and so is an older entry of the URL): `dest` keeps its link.
bool HttpCache::Insert(const std::string& url, const Entry& entry, const std::string& tmp,
                       const std::string& meta_text, std::string* err) {
  std::string meta_tmp;
  int fd = entry.size <= options_.max_bytes ? MakeTemp(options_.dir, &meta_tmp, err) : -1;
  bool meta_ok = fd >= 0 && write(fd, meta_text.data(), meta_text.size()) ==
                                static_cast<ssize_t>(meta_text.size());
  if (fd >= 0 && close(fd) != 0) meta_ok = false;
  std::lock_guard lock(mu_);
  ++misses_;
  auto old = entries_.find(url);
  if (old != entries_.end()) RemoveLocked(old);
  if (!meta_ok) {  // too big for the cache, or the metadata could not be written: not kept
    unlink(tmp.c_str());
    if (!meta_tmp.empty()) unlink(meta_tmp.c_str());
    err->clear();
    return true;
  }
  if (rename(tmp.c_str(), DataPath(entry.key).c_str()) != 0 ||
      rename(meta_tmp.c_str(), (DataPath(entry.key) + ".meta").c_str()) != 0) {
    unlink(tmp.c_str());
    unlink(meta_tmp.c_str());
    unlink(DataPath(entry.key).c_str());
    return true;  // `dest` has its file; the cache just does not keep it
  }
  entries_[url] = entry;
  bytes_ += entry.size;
  TrimLocked(/*expire=*/false);
  return true;
}

// Links the entry of `url` into `dest`: true if done; false with *err empty if there is no
// entry (any more), with *err set if linking failed.
bool HttpCache::LinkEntry(const std::string& url, const std::string& dest, FetchedFile* out,
                          std::string* err) {
  err->clear();
  std::lock_guard lock(mu_);
  auto it = entries_.find(url);
  if (it == entries_.end()) return false;
  struct stat st {};
  bool linked = true;
  if (!LinkReplacing(DataPath(it->second.key), dest, &linked, err) || !StatOf(dest, &st, err)) {
    return false;
  }
  Entry& entry = it->second;
  entry.last_used_ms = clock_();
  ++hits_;
  *out = FetchedFile{entry.size,
                     static_cast<uint64_t>(st.st_ino),
                     static_cast<uint64_t>(st.st_dev),
                     entry.etag,
                     entry.last_modified,
                     /*downloaded=*/false,
                     linked};
  return true;
}

Revalidation HttpCache::Revalidate(const std::string& url, const std::string& etag,
                                   const std::string& last_modified, std::string* why) {
  if (etag.empty() && last_modified.empty()) {
    *why = url + " has no ETag or Last-Modified to revalidate with";
    return Revalidation::kStale;
  }
  HttpGetRequest request{url, etag, last_modified, -1};
  HttpGetResponse response;
  if (!HttpGet(request, &response, why)) return Revalidation::kError;
  if (response.status == 304) return Revalidation::kFresh;
  *why = url + " changed since it was staged (GET: " + response.reason + ")";
  return Revalidation::kStale;
}

void HttpCache::RemoveLocked(std::map<std::string, Entry>::iterator it) {
  unlink((DataPath(it->second.key) + ".meta").c_str());
  unlink(DataPath(it->second.key).c_str());
  bytes_ -= it->second.size;
  entries_.erase(it);
}

void HttpCache::TrimLocked(bool expire) {
  int64_t now = clock_();
  for (auto it = entries_.begin(); expire && it != entries_.end();) {
    auto next = std::next(it);
    if (now - it->second.last_used_ms > options_.ttl_ms) {
      RemoveLocked(it);
      ++expirations_;
    }
    it = next;
  }
  while (bytes_ > options_.max_bytes && !entries_.empty()) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.last_used_ms < oldest->second.last_used_ms) oldest = it;
    }
    RemoveLocked(oldest);
    ++evictions_;
  }
}

void HttpCache::Trim() {
  std::lock_guard lock(mu_);
  TrimLocked(/*expire=*/true);
}

nlohmann::json HttpCache::Stats() const {
  std::lock_guard lock(mu_);
  return {{"entries", entries_.size()},
          {"bytes", bytes_},
          {"max_bytes", options_.max_bytes},
          {"hits", hits_},
          {"misses", misses_},
          {"evictions", evictions_},
          {"expirations", expirations_}};
}

}  // namespace chainctl::daemon
