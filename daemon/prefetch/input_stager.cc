#include "daemon/prefetch/input_stager.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "common/json_text.h"
#include "daemon/prefetch/http_get.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;

// One file an input resolved to.
struct Source {
  std::string input;  // as declared
  std::string path;   // the absolute path, or the URL
  std::string name;   // its name in `dest`
  bool url = false;
};

// The last segment of a URL's path, without query or fragment; "" if there is none.
std::string UrlBaseName(const std::string& url) {
  size_t start = url.find("://") + 3;
  size_t end = url.find_first_of("?#", start);
  std::string rest = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  size_t slash = rest.find('/');
  if (slash == std::string::npos) return "";
  std::string path = rest.substr(slash);
  std::string name = path.substr(path.rfind('/') + 1);
  return name == "." || name == ".." ? "" : name;
}

bool HasWildcard(const std::string& pattern) {
  return pattern.find_first_of("*?[") != std::string::npos;
}

int OnGlobError(const char*, int) { return 0; }  // unreadable folders just match nothing

bool ResolveLocal(const std::string& input, std::vector<Source>* out, std::string* err) {
  if (input.empty() || input[0] != '/') {
    *err = input + ": not an absolute path or an http(s) URL";
    return false;
  }
  glob_t matches{};
  int rc = glob(input.c_str(), 0, OnGlobError, &matches);
  if (rc != 0) {
    globfree(&matches);
    *err = rc != GLOB_NOMATCH   ? input + ": glob failed"
           : HasWildcard(input) ? input + " matches no file"
                                : input + ": no such file";
    return false;
  }
  bool ok = true;
  for (size_t i = 0; ok && i < matches.gl_pathc; ++i) {
    std::string path = matches.gl_pathv[i];
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      *err = path + ": " + std::strerror(errno);
      ok = false;
    } else if (S_ISDIR(st.st_mode)) {
      *err = path + ": is a directory (stage its files with a glob)";
      ok = false;
    } else if (!S_ISREG(st.st_mode)) {
      *err = path + ": not a regular file";
      ok = false;
    } else {
      out->push_back({input, path, fs::path(path).filename().string(), false});
    }
  }
  globfree(&matches);
  return ok;
}

// Every file `inputs` stand for, in order; fails on a pattern matching nothing, a directory,
// a URL without a file name, or two files with the same name.
bool Resolve(const std::vector<std::string>& inputs, std::vector<Source>* sources,
             std::string* err) {
  for (const std::string& input : inputs) {
    if (IsHttpUrl(input)) {
      std::string name = UrlBaseName(input);
      if (name.empty()) {
        *err = input + ": the URL's path has no file name";
        return false;
      }
      sources->push_back({input, input, name, true});
    } else if (!ResolveLocal(input, sources, err)) {
      return false;
    }
  }
  std::map<std::string, const Source*> by_name;
  for (const Source& source : *sources) {
    auto [it, added] = by_name.emplace(source.name, &source);
    if (!added) {
      *err = "name clash: " + it->second->path + " and " + source.path + " are both staged as " +
             source.name;
      return false;
    }
  }
  return true;
}

// Removes what `dest` holds besides the files named in `sources` (an earlier staging's).
void RemoveOthers(const std::string& dest, const std::vector<Source>& sources) {
  std::set<std::string> names;
  for (const Source& source : sources) names.insert(source.name);
  std::error_code ec;
  std::vector<fs::path> others;
  for (const auto& item : fs::directory_iterator(dest, ec)) {
    if (!names.count(item.path().filename().string())) others.push_back(item.path());
  }
  for (const fs::path& path : others) fs::remove_all(path, ec);
}

void ReadAhead(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  close(fd);
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Why the local staged `file` is no longer what the task should get; "" if it still is.
std::string LocalStaleness(const StagedFile& file) {
  struct stat st {};
  if (stat(file.source.c_str(), &st) != 0) {
    return file.source + (errno == ENOENT ? " was deleted since it was staged"
                                          : std::string(": ") + std::strerror(errno));
  }
  const char* what = static_cast<uint64_t>(st.st_ino) != file.inode ||
                             static_cast<uint64_t>(st.st_dev) != file.device
                         ? "replaced"
                     : static_cast<uint64_t>(st.st_size) != file.size ? "size"
                     : MtimeNs(st) != file.mtime_ns                   ? "mtime"
                                                                      : nullptr;
  if (what) return file.source + " changed since it was staged (" + what + ")";
  struct stat staged {};
  if (stat(file.path.c_str(), &staged) != 0) return file.path + " is gone";
  bool intact = file.linked ? static_cast<uint64_t>(staged.st_ino) == file.inode &&
                                  static_cast<uint64_t>(staged.st_dev) == file.device
                            : static_cast<uint64_t>(staged.st_size) == file.size &&
                                  MtimeNs(staged) == file.mtime_ns;
  return intact ? "" : "the staged " + file.path + " was modified";
}

// "/d/*.csv now matches a different set of files (+/d/c.csv)" for the first input whose files
// `now` differ from those staged; "" if none.
std::string SetChange(const std::vector<std::string>& inputs, const std::vector<Source>& now,
                      const std::vector<StagedFile>& staged) {
  for (const std::string& input : inputs) {
    std::set<std::string> before, after;
    for (const StagedFile& file : staged) {
      if (file.input == input) before.insert(file.source);
    }
    for (const Source& source : now) {
      if (source.input == input) after.insert(source.path);
    }
    if (before == after) continue;
    std::string diff;
    for (const std::string& path : after) {
      if (!before.count(path)) diff += (diff.empty() ? "+" : ", +") + path;
    }
    for (const std::string& path : before) {
      if (!after.count(path)) diff += (diff.empty() ? "-" : ", -") + path;
    }
    return input + " now matches a different set of files (" + diff + ")";
  }
  return staged.size() == now.size() ? "" : "the inputs changed since they were staged";
}

// Makes `path`, a hard link to a cache entry, a file of its own (a reflink, else a copy, with
// the entry's mtime), so that what a task writes to it cannot reach the cache.
// Adds the bytes copied to *copied.
bool Unshare(const std::string& path, FetchedFile* fetched, uint64_t* copied, std::string* err) {
  const std::string copy = path + ".~unshared";
  StagedFile placed;
  if (!PlaceLocalFile(path, copy, /*allow_hardlink=*/false, &placed, copied, err)) return false;
  struct stat st {};
  if (rename(copy.c_str(), path.c_str()) != 0 || stat(path.c_str(), &st) != 0) {
    *err = path + ": " + std::strerror(errno);
    unlink(copy.c_str());
    return false;
  }
  fetched->linked = false;
  fetched->inode = static_cast<uint64_t>(st.st_ino);
  fetched->device = static_cast<uint64_t>(st.st_dev);
  return true;
}

}  // namespace

InputStager::InputStager(InputCacheOptions options, CacheClock clock)
    : hardlink_local_(options.hardlink_local), cache_(std::move(options), std::move(clock)) {}

StageResult InputStager::Stage(const std::vector<std::string>& inputs, const std::string& dest,
                               bool link, const StageCancelled& cancelled) {
  StageResult result = StageFiles(inputs, dest, link && hardlink_local_, cancelled);
  result.error = PrintableBytes(result.error, SIZE_MAX);
  return result;
}

StageResult InputStager::StageFiles(const std::vector<std::string>& inputs, const std::string& dest,
                                    bool link, const StageCancelled& cancelled) {
  StageResult result;
  std::vector<Source> sources;
  if (!Resolve(inputs, &sources, &result.error)) return result;
  std::error_code ec;
  fs::create_directories(dest, ec);
  if (ec) {
    result.error = dest + ": " + ec.message();
    return result;
  }
  RemoveOthers(dest, sources);
  for (const Source& source : sources) {
    if (cancelled && cancelled()) {
      result.error = "cancelled";
      return result;
    }
    StagedFile file;
    std::string target = dest + "/" + source.name;
    if (source.url) {
      FetchedFile fetched;
      if (!cache_.Fetch(source.path, target, &fetched, &result.error)) return result;
      if (fetched.linked && !link &&
          !Unshare(target, &fetched, &result.bytes_copied, &result.error)) {
        return result;
      }
      file = StagedFile{
          source.input,  source.path,    target,         fetched.size, 0,
          fetched.inode, fetched.device, fetched.linked, fetched.etag, fetched.last_modified};
      struct stat st {};
      if (stat(target.c_str(), &st) == 0) file.mtime_ns = MtimeNs(st);
      if (fetched.downloaded) result.bytes_copied += fetched.size;
    } else if (!PlaceLocalFile(source.path, target, link, &file, &result.bytes_copied,
                               &result.error, cancelled)) {
      return result;
    } else {
      file.input = source.input;
    }
    ReadAhead(target);
    result.bytes += file.size;
    result.files.push_back(std::move(file));
  }
  result.ok = true;
  return result;
}

bool InputStager::StillFresh(const std::vector<std::string>& inputs, const StageResult& staged,
                             std::string* why) {
  *why = PrintableBytes(Staleness(inputs, staged), SIZE_MAX);
  return why->empty();
}

std::string InputStager::Staleness(const std::vector<std::string>& inputs,
                                   const StageResult& staged) {
  if (!staged.ok) return "the inputs were not staged";
  std::vector<Source> sources;
  std::string why;
  if (!Resolve(inputs, &sources, &why)) return why;
  why = SetChange(inputs, sources, staged.files);
  for (size_t i = 0; why.empty() && i < staged.files.size(); ++i) {
    const StagedFile& file = staged.files[i];
    why = IsHttpUrl(file.source) ? UrlStaleness(file) : LocalStaleness(file);
  }
  return why;
}

// Like LocalStaleness, for a URL: the file in `dest` is still the one placed, unchanged, and
// the server answers 304 to the validators recorded.
std::string InputStager::UrlStaleness(const StagedFile& file) {
  struct stat st {};
  if (stat(file.path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_ino) != file.inode ||
      static_cast<uint64_t>(st.st_size) != file.size || MtimeNs(st) != file.mtime_ns) {
    return "the staged " + file.path + " was modified, replaced or removed";
  }
  std::string why;
  Revalidation answer = cache_.Revalidate(file.source, file.etag, file.last_modified, &why);
  return answer == Revalidation::kFresh ? "" : why;
}

nlohmann::json InputStager::Stats() const { return cache_.Stats(); }

void InputStager::Trim() { cache_.Trim(); }

}  // namespace chainctl::daemon
