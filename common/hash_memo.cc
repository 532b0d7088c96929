#include "common/hash_memo.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

#include "common/read_file.h"

namespace chainctl {
namespace {

constexpr char kMagic[] = "chainctl-hash-memo\n";
constexpr uint32_t kVersion = 1;

int64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

template <typename T>
void Put(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only (x86-64, arm64)
  out->append(bytes, sizeof(T));
}

// Reads from a byte string with bounds checks; any overrun makes ok() false.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  T Get() {
    T value{};
    if (!Has(sizeof(T))) return value;
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  std::string_view Bytes(size_t n) {
    if (!Has(n)) return {};
    std::string_view part = bytes_.substr(at_, n);
    at_ += n;
    return part;
  }
  bool ok() const { return ok_; }
  bool done() const { return ok_ && at_ == bytes_.size(); }

 private:
  bool Has(size_t n) {
    if (bytes_.size() - at_ < n) ok_ = false;
    return ok_;
  }
  std::string_view bytes_;
  size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace

FileStamp FileStamp::Of(const struct stat& st) {
  return FileStamp{static_cast<uint64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
                   static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_dev)};
}

HashMemo::HashMemo() : HashMemo(Options{}) {}

HashMemo::HashMemo(Options options) : options_(std::move(options)) {
  if (!options_.clock) options_.clock = RealtimeNs;
  options_.max_entries = std::max<size_t>(options_.max_entries, 1);
}

int64_t HashMemo::Now() const { return options_.clock(); }

std::optional<Hash128> HashMemo::Lookup(const std::string& path, const FileStamp& stamp) {
  std::lock_guard lock(mutex_);
  auto it = by_path_.find(path);
  if (it == by_path_.end() || !(it->second->stamp == stamp)) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  order_.splice(order_.end(), order_, it->second);  // now the most recently used
  return it->second->hash;
}

bool HashMemo::Store(const std::string& path, const FileStamp& stamp, const Hash128& hash,
                     int64_t hash_start_ns) {
  int64_t newest = std::max(stamp.mtime_ns, stamp.ctime_ns);
  if (newest >= hash_start_ns - options_.racy_window_ns) return false;  // racy: not trusted
  std::lock_guard lock(mutex_);
  InsertLocked(Entry{path, stamp, hash});
  return true;
}

void HashMemo::InsertLocked(Entry entry) {
  auto it = by_path_.find(entry.path);
  if (it != by_path_.end()) {
    order_.erase(it->second);
    by_path_.erase(it);
  }
  order_.push_back(std::move(entry));
  by_path_[order_.back().path] = std::prev(order_.end());
  while (order_.size() > options_.max_entries) {
    by_path_.erase(order_.front().path);
    order_.pop_front();
  }
}

bool HashMemo::Save(const std::string& path, std::string* err) const {
  std::string bytes = kMagic;
  {
    std::lock_guard lock(mutex_);
    Put<uint32_t>(&bytes, kVersion);
    Put<uint32_t>(&bytes, static_cast<uint32_t>(order_.size()));
    for (const Entry& e : order_) {
      for (uint64_t v : {e.stamp.size, static_cast<uint64_t>(e.stamp.mtime_ns),
                         static_cast<uint64_t>(e.stamp.ctime_ns), e.stamp.inode, e.stamp.dev,
                         e.hash.high, e.hash.low})
        Put<uint64_t>(&bytes, v);
      Put<uint32_t>(&bytes, static_cast<uint32_t>(e.path.size()));
      bytes += e.path;
    }
  }
  Put<uint64_t>(&bytes, XXH3_64bits(bytes.data(), bytes.size()));
  static std::atomic<uint64_t> saves{0};  // a distinct temporary file per Save in this process
  std::string temp = path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(++saves);
  std::ofstream out(temp, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out) {
    unlink(temp.c_str());
    *err = "cannot write " + temp;
    return false;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    *err = "cannot rename " + temp + " to " + path + ": " + std::strerror(errno);
    unlink(temp.c_str());
    return false;
  }
  return true;
}

bool HashMemo::Load(const std::string& path, std::string* why) {
  std::string local_why;
  if (!why) why = &local_why;
  {
    std::lock_guard lock(mutex_);
    order_.clear();
    by_path_.clear();
  }
  std::string bytes;
  if (int error = ReadFileBytes(path, &bytes, uint64_t{1} << 31); error != 0) {
    *why = path + ": " + std::strerror(error);
    return false;
  }
  size_t body = bytes.size() >= 8 ? bytes.size() - 8 : 0;
  Reader reader(bytes);
  if (reader.Bytes(sizeof(kMagic) - 1) != kMagic || reader.Get<uint32_t>() != kVersion) {
    *why = path + ": not a version " + std::to_string(kVersion) + " hash memo";
    return false;
  }
  Reader tail(std::string_view(bytes).substr(body));
  if (bytes.size() < 8 || tail.Get<uint64_t>() != XXH3_64bits(bytes.data(), body)) {
    *why = path + ": checksum mismatch";
    return false;
  }
  uint32_t count = reader.Get<uint32_t>();
  std::list<Entry> entries;
  for (uint32_t i = 0; i < count && reader.ok(); ++i) {
    Entry e;
    e.stamp.size = reader.Get<uint64_t>();
    e.stamp.mtime_ns = static_cast<int64_t>(reader.Get<uint64_t>());
    e.stamp.ctime_ns = static_cast<int64_t>(reader.Get<uint64_t>());
    e.stamp.inode = reader.Get<uint64_t>();
    e.stamp.dev = reader.Get<uint64_t>();
    e.hash.high = reader.Get<uint64_t>();
    e.hash.low = reader.Get<uint64_t>();
    e.path = std::string(reader.Bytes(reader.Get<uint32_t>()));
    entries.push_back(std::move(e));
  }
  reader.Bytes(8);  // the checksum
  if (!reader.done()) {
    *why = path + ": malformed entries";
    return false;
  }
  std::lock_guard lock(mutex_);
  for (Entry& e : entries) InsertLocked(std::move(e));
  return true;
}

size_t HashMemo::size() const {
  std::lock_guard lock(mutex_);
  return order_.size();
}

uint64_t HashMemo::hits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

uint64_t HashMemo::misses() const {
  std::lock_guard lock(mutex_);
  return misses_;
}

}  // namespace chainctl
