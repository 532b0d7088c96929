// `chainctl run --watch`: which files of a project changed, seen with inotify(7).
//
// A Watcher watches the folders that a chain's `sources:` globs (common/source_glob.h) may
// cover, below the chain file's folder (`base`): for `src/**/*.py` src/ and every folder below
// it (a folder that appears later is watched as it appears, and its matching files count as
// changed); for `*.py` or `a/b.py` that one folder; the folders on the way to a glob's folder
// that does not exist yet, so that it is seen when it does. `base` itself is always watched, for
// the chain file and the other `files`. Folders named .git and the `ignore` folders (chaind's
// state) are never watched. Only files matter: a change is a file that matches a glob (or is one
// of `files`) being written, created, deleted or renamed, or a covered folder going away.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace chainctl::cli {

struct WatchSpec {
  std::string base;                       // absolute: the chain file's folder
  std::vector<std::string> globs;         // relative to base, in the grammar of ExpandSourceGlobs
  std::vector<std::string> files;         // relative to base: the chain file, its env_file...
  std::vector<std::string> ignore;        // absolute folders never watched (chaind's state)
  std::vector<std::string> ignore_globs;  // relative to base: changes never reported (outputs)
};

// Whether `path` (relative, "/"-separated) matches `glob` in the grammar of ExpandSourceGlobs:
// fnmatch(3) per component, `**` alone for zero or more folders, a trailing `**` for all below.
bool SourceGlobMatches(const std::string& glob, const std::string& path);

class Watcher {
 public:
  Watcher() = default;
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Sets up the watches (afresh if started before); false with *err if inotify cannot, or if
  // base cannot be watched. A folder below that cannot be (fs.inotify.max_user_watches): a warning.
  bool Start(const WatchSpec& spec, std::string* err);
  // Readable (poll(2) POLLIN) when events wait for Drain; -1 before Start.
  int fd() const { return fd_; }
  // Reads the waiting events without blocking and returns what changed, relative to base,
  // sorted, once each ("." when the kernel's queue overflowed: anything may have). Watches new
  // folders as it goes. Problems met on the way (a folder that could not be watched) go to
  // TakeWarnings.
  std::vector<std::string> Drain();
  std::vector<std::string> TakeWarnings();
  size_t watched_folders() const { return folders_.size(); }

 private:
  bool Covered(const std::string& rel) const;  // a folder the globs may match files in
  bool Wanted(const std::string& rel) const;   // covered, on the way to a glob's folder, or base
  bool Reported(const std::string& rel) const;
  void AddTree(const std::string& rel, std::vector<std::string>* found);
  void Forget(const std::string& rel);
  void OnEvent(int wd, uint32_t mask, const std::string& name, std::vector<std::string>* changed);

  WatchSpec spec_;
  struct Root {
    std::string folder;  // the glob's literal folder, relative to base ("" for base)
    bool deep;           // a wildcard or ** in a folder component: every folder below too
  };
  std::vector<Root> roots_;
  int fd_ = -1;
  std::map<int, std::string> folders_;  // watch descriptor -> folder relative to base
  std::vector<std::string> warnings_;
};

// How WaitForChanges merges a burst of changes into one.
struct Debounce {
  std::chrono::milliseconds quiet{100};      // no event for this long ends the burst...
  std::chrono::milliseconds max_wait{1000};  // ...or this long after its first change
};

// Waits for changes on `watcher` up to `timeout` (negative: no limit), then for the burst to end
// as `debounce` says, and returns all its changes merged (sorted, once each), *first set to when
// the first was seen. Returns nothing on timeout, or once `stop` says true: SIGINT, SIGTERM and
// SIGHUP are blocked but while waiting (ppoll(2)), so that a handler's flag that `stop` reads is
// never missed.
std::vector<std::string> WaitForChanges(Watcher* watcher, const Debounce& debounce,
                                        std::chrono::milliseconds timeout,
                                        const std::function<bool()>& stop,
                                        std::chrono::steady_clock::time_point* first);

}  // namespace chainctl::cli
