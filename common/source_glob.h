// The files a task's `sources:` globs match (DESIGN.md §4 "Cache"), relative to a base folder.
//
// Glob grammar, per `/`-separated component of a relative pattern:
//   `*`  any run of characters but `/`;  `?`  one character;  `[...]`  a class (fnmatch(3),
//   `\` escapes); `**` alone as a component: zero or more folders (go-task, gitignore); a
//   trailing `**` (`src/**`) matches every file below.
//   A dot is not special: `*` matches `.hidden` as in go-task.
// Rejected (an error): an empty pattern, an absolute one, a `..` component, `**` joined to other
// characters in one component (`a**`).
// Only files match (a symlink counts as what it points to: a link to a file is a file, a dangling
// link matches nothing); folders never do. `**` does not descend into symlinked folders (no
// cycles); a literal component or a one-component wildcard may pass through one.
// Thread-safe: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chainctl {

struct GlobLimits {
  uint64_t max_files = 100'000;      // more matched files: an error
  uint64_t max_entries = 2'000'000;  // more folder entries examined: an error (a walk is bounded)
};

// Checks one pattern against the grammar above without touching the file system. Returns false
// with *err naming the pattern when it is rejected: "<field> glob 'a**' joins ** to ..."; `field`
// names the list it came from ("sources", "outputs").
bool CheckSourceGlob(const std::string& glob, std::string_view field, std::string* err);

// Sets *files to the matched files' paths relative to `base` ("a/b.py", no "./"), sorted
// bytewise, without duplicates (globs may overlap). Returns false with *err for a bad pattern,
// a limit passed, or a folder that exists but cannot be listed (EACCES: the key would silently
// lose its files). A path or folder that does not exist (or vanishes meanwhile) matches nothing.
bool ExpandSourceGlobs(const std::string& base, const std::vector<std::string>& globs,
                       const GlobLimits& limits, std::vector<std::string>* files, std::string* err);

}  // namespace chainctl
