#include "daemon/store/task_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <memory>
#include <set>
#include <tuple>
#include <utility>

#include "common/json_text.h"
#include "common/read_file.h"
#include "common/source_glob.h"
#include "common/unique_fd.h"
#include "daemon/store/task_cache_files.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;
namespace files = cache_files;

constexpr int kFormat = 1;
// The largest manifest or last/ file read: a task's output is bounded by its max_output, far less.
constexpr uint64_t kMaxManifestBytes = 256ull << 20;
// What is in tmp/ longer than this was left by a chaind that died (a store or removal takes less).
constexpr auto kStaleTemp = std::chrono::hours(24);
// The manifest holds the output (at most kMaxJsonDepth deep) two levels down.
constexpr int kManifestDepth = kMaxJsonDepth + 2;

// One file of an entry, as its manifest lists it.
struct CachedFile {
  std::string kind;  // "out" (restored below Places::outdir) or "project" (below project_dir)
  std::string path;  // relative, IsSafeRelativePath; the same below the entry's kind/ folder
  uint64_t size = 0;
  std::string hash;  // Hash128::Hex() of its content
  mode_t mode = 0;   // permission bits, at most 0777
};

struct Manifest {
  json output;
  json info;
  std::vector<CachedFile> files;
};

// What a check of an entry found: kCorrupt removes the entry; kError (an I/O error that says
// nothing of the entry, e.g. EMFILE) makes the lookup a miss and leaves it.
enum class Check { kOk, kCorrupt, kError };

using Fd = UniqueFd;

// An errno met reading an entry's file `name`: a file missing, not regular or too long is
// corruption; anything else an error.
Check Failed(const std::string& name, int error, std::string* why) {
  *why = files::ErrnoText(name, error);
  bool corrupt =
      error == ENOENT || error == ENOTDIR || error == ELOOP || error == EINVAL || error == EFBIG;
  return corrupt ? Check::kCorrupt : Check::kError;
}

Check Corrupt(const std::string& message, std::string* why) {
  *why = message;
  return Check::kCorrupt;
}

int64_t NowUnixMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The folder part of `path`, which has a '/'.
std::string ParentOf(const std::string& path) { return path.substr(0, path.rfind('/')); }

// The manifest's checksum: XXH3-128 hex of its JSON text (DumpJson: compact, keys sorted)
// without the "checksum" member.
std::string ChecksumOf(const json& manifest) { return HashBytes(DumpJson(manifest)).Hex(); }

std::string ManifestText(const Hash128& key, const json& output, const json& info,
                         const std::vector<CachedFile>& cached) {
  json list = json::array();
  for (const CachedFile& f : cached) {
    list.push_back(
        {{"kind", f.kind}, {"path", f.path}, {"size", f.size}, {"hash", f.hash}, {"mode", f.mode}});
  }
  json manifest = {{"format", kFormat}, {"key", key.Hex()}, {"created_unix_ms", NowUnixMs()},
                   {"output", output},  {"info", info},     {"files", std::move(list)}};
  manifest["checksum"] = ChecksumOf(manifest);
  return DumpJson(manifest);
}

// One member of the manifest's "files"; throws nlohmann's exceptions for a wrong type.
Check ParseCachedFile(const json& j, CachedFile* f, std::string* why) {
  f->kind = j.at("kind").get<std::string>();
  f->path = j.at("path").get<std::string>();
  f->size = j.at("size").get<uint64_t>();
  f->hash = j.at("hash").get<std::string>();
  uint64_t mode = j.at("mode").get<uint64_t>();
  if (f->kind != "out" && f->kind != "project") {
    return Corrupt("manifest.json: a file of kind \"" + f->kind + "\"", why);
  }
  if (!files::IsSafeRelativePath(f->path)) {
    return Corrupt("manifest.json: the unsafe path \"" + PrintableBytes(f->path) + "\"", why);
  }
  if (mode > 0777) return Corrupt("manifest.json: the mode " + std::to_string(mode), why);
  f->mode = static_cast<mode_t>(mode);
  return Check::kOk;
}

// The manifest's members past its checksum; throws nlohmann's exceptions for a wrong type.
Check ParseManifestMembers(const json& doc, const Hash128& key, Manifest* m, std::string* why) {
  if (doc.at("format").get<int>() != kFormat) {
    return Corrupt("manifest.json: format " + doc.at("format").dump(), why);
  }
  if (doc.at("key").get<std::string>() != key.Hex()) {
    return Corrupt("manifest.json: of another key", why);
  }
  m->output = doc.at("output");
  m->info = doc.value("info", json());
  const json& list = doc.at("files");
  if (!list.is_array()) return Corrupt("manifest.json: \"files\" is not an array", why);
  std::set<std::pair<std::string, std::string>> seen;
  for (const json& j : list) {
    CachedFile f;
    if (Check c = ParseCachedFile(j, &f, why); c != Check::kOk) return c;
    if (!seen.emplace(f.kind, f.path).second) {
      return Corrupt("manifest.json: " + f.kind + "/" + f.path + " twice", why);
    }
    m->files.push_back(std::move(f));
  }
  return Check::kOk;
}

// Reads and checks the manifest of the entry open as `dirfd`.
Check ReadManifest(int dirfd, const Hash128& key, Manifest* m, std::string* why) {
  std::string text;
  if (int error = files::ReadAt(dirfd, "manifest.json", &text, kMaxManifestBytes)) {
    return Failed("manifest.json", error, why);
  }
  json doc;
  JsonTextFault fault;
  if (!DecodeJsonText(text, &doc, &fault, why, kManifestDepth)) {
    return Corrupt("manifest.json: " + *why, why);
  }
  auto sum = doc.is_object() ? doc.find("checksum") : doc.end();
  if (sum == doc.end() || !sum->is_string()) return Corrupt("manifest.json: no checksum", why);
  std::string checksum = sum->get<std::string>();
  doc.erase(sum);
  if (ChecksumOf(doc) != checksum) return Corrupt("manifest.json: wrong checksum", why);
  try {
    return ParseManifestMembers(doc, key, m, why);
  } catch (const json::exception& e) {
    return Corrupt(std::string("manifest.json: ") + e.what(), why);
  }
}

// Whether every file the manifest lists is in the entry (`dirfd`) with its size and hash.
Check CheckFiles(int dirfd, const Manifest& m, std::string* why) {
  auto buffer = std::make_unique<char[]>(kHashReadBuffer);
  for (const CachedFile& f : m.files) {
    std::string name = f.kind + "/" + f.path;
    Fd in(openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    struct stat st {};
    if (in.get() < 0 || fstat(in.get(), &st) != 0) return Failed(name, errno, why);
    if (!S_ISREG(st.st_mode)) return Corrupt(name + ": not a regular file", why);
    Hash128 hash;
    uint64_t size = 0;
    if (int error = HashFd(in.get(), buffer.get(), kHashReadBuffer, &hash, &size)) {
      return Failed(name, error, why);
    }
    if (size != f.size) {
      return Corrupt(name + ": " + std::to_string(size) + " bytes, the manifest says " +
                         std::to_string(f.size),
                     why);
    }
    if (hash.Hex() != f.hash) return Corrupt(name + ": its content differs from its hash", why);
  }
  return Check::kOk;
}

// Puts the checked files of the entry `dirfd` in place, each through a temporary file.
bool PutFiles(int dirfd, const Manifest& m, const TaskCache::Places& places, std::string* why) {
  for (const CachedFile& f : m.files) {
    if ((f.kind == "out" ? places.outdir : places.project_dir).empty()) {
      *why = "no folder to restore " + f.kind + "/" + f.path + " into";
      return false;
    }
  }
  for (const CachedFile& f : m.files) {
    std::string name = f.kind + "/" + f.path;
    std::string dest = (f.kind == "out" ? places.outdir : places.project_dir) + "/" + f.path;
    Fd in(openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (in.get() < 0) {
      *why = files::ErrnoText("reading " + name, errno);
      return false;
    }
    if (!files::MakeDirs(ParentOf(dest), why) || !files::ReplaceFile(in.get(), dest, f.mode, why)) {
      return false;
    }
  }
  return true;
}

// Copies `paths` (relative to `from`) into the new folder `to`, recording each as `kind` with
// its hash, size and mode.
bool CopyFiles(const std::string& kind, const std::string& from,
               const std::vector<std::string>& paths, const std::string& to,
               std::vector<CachedFile>* cached, uint64_t* bytes, std::string* err) {
  auto buffer = std::make_unique<char[]>(kHashReadBuffer);
  for (const std::string& path : paths) {
    std::string source = from + "/" + path;
    Fd in(open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    struct stat st {};
    if (in.get() < 0 || fstat(in.get(), &st) != 0) {
      *err = files::ErrnoText("reading " + source, errno);
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      *err = source + ": not a regular file";
      return false;
    }
    CachedFile f{.kind = kind,
                 .path = path,
                 .size = 0,
                 .hash = "",
                 .mode = static_cast<mode_t>(st.st_mode & 0777)};
    Hash128 hash;
    if (int error = HashFd(in.get(), buffer.get(), kHashReadBuffer, &hash, &f.size)) {
      *err = files::ErrnoText("reading " + source, error);
      return false;
    }
    f.hash = hash.Hex();
    // A file changed after its hash gives an entry that Restore finds corrupt: never a wrong hit.
    std::string dest = to + "/" + path;
    if (!files::MakeDirs(ParentOf(dest), err) || !files::CopyToNewFile(in.get(), dest, 0644, err)) {
      return false;
    }
    *bytes += f.size;
    cached->push_back(std::move(f));
  }
  return true;
}

// Whether the entry open as `dirfd` is no longer at `path` (removed or replaced meanwhile).
bool Gone(const std::string& path, int dirfd) {
  struct stat now {
  }, open{};
  if (stat(path.c_str(), &now) != 0 || fstat(dirfd, &open) != 0) return true;
  return now.st_ino != open.st_ino || now.st_dev != open.st_dev;
}

}  // namespace

std::string WhyNotCacheable(const TaskSpec& task) {
  if (task.source_dir.empty()) {
    return "the chain was posted without its folder (source_dir): its sources cannot be found";
  }
  if (!task.input_files.empty()) return "a task with inputs.files is not cached";
  return "";
}

TaskCache::TaskCache(Options options) : options_(std::move(options)) {}

std::string TaskCache::EntryPath(const Hash128& key) const {
  std::string hex = key.Hex();
  return options_.dir + "/entries/" + hex.substr(0, 2) + "/" + hex;
}

std::string TaskCache::TempDir() const { return options_.dir + "/tmp"; }

bool TaskCache::Open(std::string* err) {
  if (options_.dir.empty()) {
    *err = "no cache folder given";
    return false;
  }
  for (const char* sub : {"", "/entries", "/tmp", "/last"}) {
    if (!files::MakeDirs(options_.dir + sub, err)) return false;
  }
  std::string probe = TempDir() + "/open.XXXXXX";
  if (!mkdtemp(probe.data())) {
    *err = files::ErrnoText("cannot write in " + TempDir(), errno);
    return false;
  }
  rmdir(probe.c_str());
  RemoveStaleTemps();
  estimate_.store(Scan().bytes);
  return true;
}

void TaskCache::RemoveStaleTemps() const {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  for (const std::string& name : files::ListDir(TempDir())) {
    std::string path = TempDir() + "/" + name;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) continue;
    auto age = now - std::chrono::seconds(st.st_mtim.tv_sec);
    if (age > kStaleTemp) files::RemoveTree(path);
  }
}

TaskCache::Lookup TaskCache::Restore(const Hash128& key, const Places& places,
                                     nlohmann::json* output, nlohmann::json* info,
                                     std::string* why) {
  std::string entry = EntryPath(key);
  Fd dir(open(entry.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    if (errno != ENOENT) *why = files::ErrnoText(entry, errno);
    return Lookup::kMiss;
  }
  Manifest manifest;
  std::string problem;
  Check check = ReadManifest(dir.get(), key, &manifest, &problem);
  if (check == Check::kOk) check = CheckFiles(dir.get(), manifest, &problem);
  if (check != Check::kOk) {
    // Another thread or chaind removed (or pruned) it while it was read: a miss.
    if (Gone(entry, dir.get())) return Lookup::kMiss;
    *why = problem;
    if (check == Check::kError) return Lookup::kMiss;
    RemoveEntry(entry);
    return Lookup::kCorrupt;
  }
  if (!PutFiles(dir.get(), manifest, places, why)) {
    // What reached out/ goes: the task runs into an empty out/, as it would without the cache.
    std::string ignored;
    if (!places.outdir.empty()) {
      files::RemoveTree(places.outdir);
      files::MakeDirs(places.outdir, &ignored);
    }
    return Lookup::kMiss;
  }
  utimensat(dir.get(), "manifest.json", nullptr, 0);  // recently used (LRU)
  *output = std::move(manifest.output);
  *info = std::move(manifest.info);
  return Lookup::kHit;
}

bool TaskCache::Store(const Hash128& key, const Places& places,
                      const std::vector<std::string>& outputs, const nlohmann::json& output,
                      const nlohmann::json& info, std::string* err) {
  std::vector<std::string> out_files, project_files;
  if (!files::ListFiles(places.outdir, &out_files, err)) return false;
  if (!outputs.empty()) {
    std::string why = "no project folder";
    if (places.project_dir.empty() ||
        !ExpandSourceGlobs(places.project_dir, outputs, GlobLimits{}, &project_files, &why)) {
      *err = "outputs: " + why;
      return false;
    }
  }
  std::string stage = TempDir() + "/store.XXXXXX";
  if (!mkdtemp(stage.data())) {
    *err = files::ErrnoText("cannot write in " + TempDir(), errno);
    return false;
  }
  std::vector<CachedFile> cached;
  uint64_t bytes = 0;
  bool ok = CopyFiles("out", places.outdir, out_files, stage + "/out", &cached, &bytes, err) &&
            CopyFiles("project", places.project_dir, project_files, stage + "/project", &cached,
                      &bytes, err);
  std::string text = ok ? ManifestText(key, output, info, cached) : "";
  ok = ok && files::WriteFileVia(stage, stage + "/manifest.json", text, err);
  bool published = false;
  ok = ok && Publish(stage, key, &published, err);
  if (!published) {
    files::RemoveTree(stage);
    return ok;
  }
  bytes += text.size();
  if (estimate_.fetch_add(bytes) + bytes > options_.max_bytes) {
    Prune(options_.max_bytes / 10 * 9);
  }
  return true;
}

bool TaskCache::Publish(const std::string& stage, const Hash128& key, bool* published,
                        std::string* err) {
  std::string entry = EntryPath(key);
  if (!files::MakeDirs(ParentOf(entry), err)) return false;
  if (rename(stage.c_str(), entry.c_str()) == 0) {
    *published = true;
    return true;
  }
  if (errno == EEXIST || errno == ENOTEMPTY) return true;  // another writer's, the same result
  *err = files::ErrnoText("storing " + entry, errno);
  return false;
}

bool TaskCache::RemoveEntry(const std::string& entry) const {
  std::string grave = TempDir() + "/remove.XXXXXX";
  if (!mkdtemp(grave.data())) return false;
  // Renamed over the empty folder: readers see the entry whole or not at all.
  if (rename(entry.c_str(), grave.c_str()) != 0) {
    rmdir(grave.c_str());
    return false;  // ENOENT: another thread or chaind removed it
  }
  files::RemoveTree(grave);
  return true;
}

std::vector<TaskCache::EntryInfo> TaskCache::ListEntries() const {
  std::vector<EntryInfo> entries;
  std::string root = options_.dir + "/entries";
  for (const std::string& prefix : files::ListDir(root)) {
    for (const std::string& name : files::ListDir(root + "/" + prefix)) {
      EntryInfo e;
      e.path = root + "/" + prefix + "/" + name;
      struct stat st {};
      if (stat((e.path + "/manifest.json").c_str(), &st) == 0) {
        e.used_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      }
      e.bytes = files::TreeBytes(e.path);
      entries.push_back(std::move(e));
    }
  }
  return entries;
}

TaskCache::Stats TaskCache::Scan() const {
  Stats stats{.dir = options_.dir, .max_bytes = options_.max_bytes};
  for (const EntryInfo& e : ListEntries()) {
    ++stats.entries;
    stats.bytes += e.bytes;
  }
  return stats;
}

uint64_t TaskCache::Prune(uint64_t max_bytes, uint64_t* bytes) {
  std::vector<EntryInfo> entries = ListEntries();
  // Least recently used first; an entry without a manifest counts as never used.
  std::sort(entries.begin(), entries.end(), [](const EntryInfo& a, const EntryInfo& b) {
    return std::tie(a.used_ns, a.path) < std::tie(b.used_ns, b.path);
  });
  uint64_t total = 0;
  for (const EntryInfo& e : entries) total += e.bytes;
  uint64_t removed = 0, removed_bytes = 0;
  for (const EntryInfo& e : entries) {
    if (total <= max_bytes) break;
    if (RemoveEntry(e.path)) {
      ++removed;
      removed_bytes += e.bytes;
    }
    total -= e.bytes;  // removed, or by someone else
  }
  estimate_.store(total);
  if (bytes) *bytes = removed_bytes;
  return removed;
}

uint64_t TaskCache::Clear(uint64_t* bytes) { return Prune(0, bytes); }

std::string TaskCache::LastPath(const std::string& name) const {
  std::string readable;
  for (char c : name.substr(0, 40)) {
    bool plain = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    readable += plain ? c : '_';
  }
  return options_.dir + "/last/" + readable + "-" + HashBytes(name).Hex() + ".json";
}

bool TaskCache::RecordLast(const std::string& name, const nlohmann::json& parts, std::string* err) {
  json record = {{"name", name}, {"parts", parts}};
  return files::WriteFileVia(TempDir(), LastPath(name), DumpJson(record), err);
}

std::optional<nlohmann::json> TaskCache::ReadLast(const std::string& name) const {
  std::string text;
  if (ReadFileBytes(LastPath(name), &text, kMaxManifestBytes) != 0) return std::nullopt;
  json record;
  JsonTextFault fault;
  std::string err;
  if (!DecodeJsonText(text, &record, &fault, &err, kMaxJsonDepth + 1) || !record.is_object()) {
    return std::nullopt;
  }
  auto it = record.find("name");
  auto parts = record.find("parts");
  if (it == record.end() || *it != name || parts == record.end()) return std::nullopt;
  return std::move(*parts);
}

}  // namespace chainctl::daemon
