#include "common/source_glob.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace chainctl {
namespace {

std::vector<std::string> SplitPattern(const std::string& glob) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= glob.size()) {
    size_t slash = glob.find('/', start);
    if (slash == std::string::npos) slash = glob.size();
    std::string part = glob.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(part);  // "a//b", "./a": as "a/b", "a"
    start = slash + 1;
  }
  return parts;
}

bool CheckPattern(const std::string& glob, const std::vector<std::string>& parts,
                  std::string_view field, std::string* err) {
  std::string why;
  if (glob.empty() || parts.empty())
    why = "is empty";
  else if (glob[0] == '/')
    why = "is absolute (" + std::string(field) + " are relative to the chain file's folder)";
  for (const std::string& part : parts) {
    if (!why.empty()) break;
    if (part == "..")
      why = "leaves the chain file's folder (..)";
    else if (part != "**" && part.find("**") != std::string::npos)
      why = "joins ** to other characters in one component (write a/**/b*)";
  }
  if (!why.empty()) *err = std::string(field) + " glob '" + glob + "' " + why;
  return why.empty();
}

bool IsLiteral(const std::string& part) { return part.find_first_of("*?[\\") == std::string::npos; }

std::string Join(const std::string& rel, const std::string& name) {
  return rel.empty() ? name : rel + "/" + name;
}

// One pattern's walk; `found` collects across patterns.
class Walk {
 public:
  Walk(const std::string& base, const GlobLimits& limits, std::set<std::string>* found,
       std::string* err)
      : base_(base), limits_(limits), found_(found), err_(err) {}

  // Matches parts[i..] below the folder `rel` (relative to base; "" is base itself).
  bool Match(const std::vector<std::string>& parts, size_t i, const std::string& rel) {
    if (i == parts.size()) return AddIfFile(rel, DT_UNKNOWN);
    const std::string& part = parts[i];
    if (IsLiteral(part)) return Match(parts, i + 1, Join(rel, part));
    if (part == "**" && !Match(parts, i + 1, rel)) return false;  // zero folders
    std::vector<std::pair<std::string, unsigned char>> entries;   // name, d_type (not unknown)
    if (!List(rel, &entries)) return false;
    bool last = i + 1 == parts.size();
    for (const auto& [name, type] : entries) {
      std::string child = Join(rel, name);
      bool ok = true;
      if (part == "**") {  // a trailing `**` matches every file below
        ok = type == DT_DIR ? Match(parts, i, child) : (!last || AddIfFile(child, type));
      } else if (fnmatch(part.c_str(), name.c_str(), 0) == 0) {
        ok = last ? AddIfFile(child, type) : Match(parts, i + 1, child);
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  std::string Full(const std::string& rel) const { return rel.empty() ? base_ : base_ + "/" + rel; }

  // Adds `rel` if it is a file; `type` is its d_type (DT_REG spares a stat) or DT_UNKNOWN.
  bool AddIfFile(const std::string& rel, unsigned char type) {
    struct stat st {};
    if (type == DT_DIR) return true;
    if (type != DT_REG &&
        (rel.empty() || stat(Full(rel).c_str(), &st) != 0 || !S_ISREG(st.st_mode)))
      return true;
    found_->insert(rel);
    if (found_->size() <= limits_.max_files) return true;
    *err_ = "sources match more than " + std::to_string(limits_.max_files) + " files";
    return false;
  }

  // The entries of folder `rel`; a missing folder on the way has none. d_type tells folders from
  // files without a stat where the file system fills it in.
  bool List(const std::string& rel, std::vector<std::pair<std::string, unsigned char>>* entries) {
    DIR* dir = opendir(Full(rel).c_str());
    if (!dir) {
      if (errno == ENOENT || errno == ENOTDIR) return true;
      *err_ = "cannot list " + Full(rel) + ": " + std::strerror(errno);
      return false;
    }
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      if (++entries_seen_ > limits_.max_entries) {
        *err_ = "sources walk passed " + std::to_string(limits_.max_entries) + " entries";
        closedir(dir);
        return false;
      }
      unsigned char type = entry->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st {};
        bool there = lstat(Full(Join(rel, name)).c_str(), &st) == 0;
        type = there && S_ISDIR(st.st_mode)   ? DT_DIR
               : there && S_ISREG(st.st_mode) ? DT_REG
                                              : DT_LNK;
      }
      entries->emplace_back(std::move(name), type);
    }
    closedir(dir);
    std::sort(entries->begin(), entries->end());
    return true;
  }

  const std::string& base_;
  const GlobLimits& limits_;
  std::set<std::string>* found_;
  std::string* err_;
  uint64_t entries_seen_ = 0;
};

}  // namespace

bool CheckSourceGlob(const std::string& glob, std::string_view field, std::string* err) {
  return CheckPattern(glob, SplitPattern(glob), field, err);
}

bool ExpandSourceGlobs(const std::string& base, const std::vector<std::string>& globs,
                       const GlobLimits& limits, std::vector<std::string>* files,
                       std::string* err) {
  files->clear();
  std::set<std::string> found;
  for (const std::string& glob : globs) {
    std::vector<std::string> parts = SplitPattern(glob);
    if (!CheckPattern(glob, parts, "sources", err)) return false;
    Walk walk(base, limits, &found, err);
    if (!walk.Match(parts, 0, "")) return false;
  }
  files->assign(found.begin(), found.end());
  return true;
}

}  // namespace chainctl
