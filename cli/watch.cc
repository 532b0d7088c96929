#include "cli/watch.h"

#include <dirent.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

namespace chainctl::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What a watched folder reports: its entries written, created, deleted or renamed. IN_MODIFY too,
// for a writer that keeps its file open; a burst of them is merged by WaitForChanges.
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                           IN_MODIFY | IN_ONLYDIR | IN_EXCL_UNLINK;

// `path`'s components, without empty ones and "." ("a//b", "./a" as "a/b", "a").
std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = std::min(path.find('/', start), path.size());
    std::string part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(part);
    start = slash + 1;
  }
  return parts;
}

std::string Join(const std::string& rel, const std::string& name) {
  return rel.empty() ? name : rel + "/" + name;
}

// Whether `rel` is strictly below `folder` (both relative to base; "" is base).
bool Below(const std::string& rel, const std::string& folder) {
  return folder.empty()
             ? !rel.empty()
             : rel.size() > folder.size() && rel.starts_with(folder) && rel[folder.size()] == '/';
}

bool IsLiteral(const std::string& part) { return part.find_first_of("*?[\\") == std::string::npos; }

bool MatchParts(const std::vector<std::string>& glob, size_t g,
                const std::vector<std::string>& path, size_t p) {
  if (g == glob.size()) return p == path.size();
  if (glob[g] == "**") {
    if (g + 1 == glob.size()) return p < path.size();  // a trailing **: every file below
    for (size_t skip = p; skip <= path.size(); ++skip) {
      if (MatchParts(glob, g + 1, path, skip)) return true;
    }
    return false;
  }
  return p < path.size() && fnmatch(glob[g].c_str(), path[p].c_str(), 0) == 0 &&
         MatchParts(glob, g + 1, path, p + 1);
}

// The d_type of `path` for a DT_UNKNOWN entry (some filesystems give no type).
unsigned char TypeOf(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return DT_UNKNOWN;
  return S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
}

bool IsFolder(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

bool SourceGlobMatches(const std::string& glob, const std::string& path) {
  if (glob.empty() || glob[0] == '/') return false;
  return MatchParts(Split(glob), 0, Split(path), 0);
}

Watcher::~Watcher() {
  if (fd_ >= 0) close(fd_);
}

bool Watcher::Start(const WatchSpec& spec, std::string* err) {
  spec_ = spec;
  roots_.clear();
  for (const std::string& glob : spec.globs) {
    std::vector<std::string> parts = Split(glob);
    if (parts.empty() || glob[0] == '/') continue;  // refused by the chain's checks
    Root root{"", parts.back() == "**"};
    for (size_t i = 0; i + 1 < parts.size() && !root.deep; ++i) {
      if (IsLiteral(parts[i])) {
        root.folder = Join(root.folder, parts[i]);
      } else {
        root.deep = true;
      }
    }
    roots_.push_back(root);
  }
  if (fd_ >= 0) close(fd_);  // started again: afresh
  folders_.clear();
  warnings_.clear();
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    *err = std::string("inotify: ") + std::strerror(errno);
    return false;
  }
  AddTree("", nullptr);
  if (folders_.empty()) {
    *err = "cannot watch " + spec.base +
           (warnings_.empty() ? std::string(": no such folder") : ": " + warnings_.back());
    return false;
  }
  return true;
}

bool Watcher::Covered(const std::string& rel) const {
  return std::any_of(roots_.begin(), roots_.end(), [&](const Root& r) {
    return rel == r.folder || (r.deep && Below(rel, r.folder));
  });
}

bool Watcher::Wanted(const std::string& rel) const {
  for (const std::string& part : Split(rel)) {
    if (part == ".git") return false;
  }
  std::filesystem::path path = std::filesystem::path(spec_.base) / rel;
  for (const std::string& ignored : spec_.ignore) {
    std::filesystem::path rest = path.lexically_normal().lexically_relative(
        std::filesystem::path(ignored).lexically_normal());
    if (!rest.empty() && *rest.begin() != "..") return false;  // that folder or one below
  }
  bool on_the_way = std::any_of(roots_.begin(), roots_.end(),
                                [&](const Root& r) { return Below(r.folder, rel); });
  return rel.empty() || on_the_way || Covered(rel);
}

bool Watcher::Reported(const std::string& rel) const {
  auto matches = [&rel](const std::string& glob) { return SourceGlobMatches(glob, rel); };
  if (std::any_of(spec_.ignore_globs.begin(), spec_.ignore_globs.end(), matches)) return false;
  return std::any_of(spec_.globs.begin(), spec_.globs.end(), matches) ||
         std::any_of(spec_.files.begin(), spec_.files.end(),
                     [&rel](const std::string& file) { return Split(file) == Split(rel); });
}

// Watches the folder `rel` and the wanted folders below it; with `found`, also lists the files
// in them that are reported (they appeared before their folder's watch did).
void Watcher::AddTree(const std::string& rel, std::vector<std::string>* found) {
  if (!Wanted(rel)) return;
  std::string path = rel.empty() ? spec_.base : spec_.base + "/" + rel;
  int wd = inotify_add_watch(fd_, path.c_str(), kMask);
  if (wd < 0) {
    if (errno != ENOENT && errno != ENOTDIR) {
      warnings_.push_back("cannot watch " + path + ": " + std::strerror(errno) +
                          (errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : ""));
    }
    return;
  }
  folders_[wd] = rel;
  DIR* dir = opendir(path.c_str());
  if (!dir) return;
  std::vector<std::pair<std::string, unsigned char>> entries;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = e->d_type == DT_UNKNOWN ? TypeOf(path + "/" + name) : e->d_type;
    entries.emplace_back(name, type);
  }
  closedir(dir);
  for (const auto& [name, type] : entries) {
    std::string child = Join(rel, name);
    // ** does not descend into a symlinked folder; a literal folder of a glob may be one.
    bool literal = std::any_of(roots_.begin(), roots_.end(), [&](const Root& r) {
      return r.folder == child || Below(r.folder, child);
    });
    if (type == DT_DIR || (type == DT_LNK && literal && IsFolder(path + "/" + name))) {
      AddTree(child, found);
    } else if (found && Reported(child)) {
      found->push_back(child);
    }
  }
}

// Stops watching `rel` and every folder below it (moved away: their paths are no longer theirs).
void Watcher::Forget(const std::string& rel) {
  for (auto it = folders_.begin(); it != folders_.end();) {
    if (it->second == rel || Below(it->second, rel)) {
      inotify_rm_watch(fd_, it->first);
      it = folders_.erase(it);
    } else {
      ++it;
    }
  }
}

void Watcher::OnEvent(int wd, uint32_t mask, const std::string& name,
                      std::vector<std::string>* changed) {
  if (mask & IN_Q_OVERFLOW) {  // events were lost: anything may have changed
    changed->push_back(".");
    AddTree("", nullptr);
    return;
  }
  auto it = folders_.find(wd);
  if (it == folders_.end()) return;
  if (mask & IN_IGNORED) {  // the folder went away
    folders_.erase(it);
    return;
  }
  std::string rel = Join(it->second, name);
  if (!(mask & IN_ISDIR)) {
    if (!name.empty() && Reported(rel)) changed->push_back(rel);
  } else if (mask & (IN_CREATE | IN_MOVED_TO)) {
    AddTree(rel, changed);
  } else if (mask & (IN_DELETE | IN_MOVED_FROM)) {
    if (Covered(rel)) changed->push_back(rel);
    Forget(rel);
  }
}

std::vector<std::string> Watcher::Drain() {
  std::vector<std::string> changed;
  alignas(inotify_event) char buffer[64 * 1024];
  for (;;) {
    ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: nothing more waits
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      OnEvent(event->wd, event->mask, event->len > 0 ? std::string(event->name) : "", &changed);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  return changed;
}

std::vector<std::string> Watcher::TakeWarnings() {
  std::vector<std::string> warnings;
  warnings.swap(warnings_);
  return warnings;
}

namespace {

// poll(2) on `fd` until `until` (none: no limit) with SIGINT, SIGTERM and SIGHUP blocked but
// while it waits; false without waiting once `stop` says true.
bool PollUnlessStopped(int fd, std::optional<Clock::time_point> until,
                       const std::function<bool()>& stop, bool* readable) {
  sigset_t blocked, old;
  sigemptyset(&blocked);
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&blocked, signal);
  pthread_sigmask(SIG_BLOCK, &blocked, &old);
  bool stopped = stop && stop();
  *readable = false;
  if (!stopped) {
    pollfd p{fd, POLLIN, 0};
    timespec wait{};
    if (until) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*until - Clock::now());
      ns = std::max(ns, std::chrono::nanoseconds(0));
      wait.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
      wait.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
    }
    *readable = ppoll(&p, 1, until ? &wait : nullptr, &old) > 0;  // EINTR: the caller loops
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return !stopped;
}

}  // namespace

std::vector<std::string> WaitForChanges(Watcher* watcher, const Debounce& debounce,
                                        std::chrono::milliseconds timeout,
                                        const std::function<bool()>& stop,
                                        Clock::time_point* first) {
  const Clock::time_point start = Clock::now();
  std::set<std::string> merged;
  Clock::time_point burst_start, last_change;
  for (;;) {
    std::optional<Clock::time_point> until;
    if (!merged.empty()) {
      until = std::min(last_change + debounce.quiet, burst_start + debounce.max_wait);
    } else if (timeout.count() >= 0) {
      until = start + timeout;
    }
    if (until && Clock::now() >= *until) break;
    bool readable = false;
    if (!PollUnlessStopped(watcher->fd(), until, stop, &readable)) return {};
    if (!readable) continue;
    std::vector<std::string> changed = watcher->Drain();
    if (changed.empty()) continue;
    last_change = Clock::now();
    if (merged.empty()) burst_start = *first = last_change;
    merged.insert(changed.begin(), changed.end());
  }
  return {merged.begin(), merged.end()};
}

}  // namespace chainctl::cli
