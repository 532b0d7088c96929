// Where a chain's tasks run (DESIGN.md §3): the chain file's folder (source_dir), or a
// working_dir relative to it, and the env_file read from there.
#include <sys/stat.h>

#include <filesystem>

#include "common/chain/internal.h"

namespace chainctl::internal {
namespace {

namespace fs = std::filesystem;

// `path` (a working_dir or the env_file, found at `at`) resolved against `source_dir`; "" after
// reporting why it cannot be. With `check`, it must exist, as a folder or not as `folder` says.
std::string Resolve(const std::string& path, const std::string& source_dir, bool folder, bool check,
                    const std::string& at, Reporter* report) {
  const char* what = folder ? "working_dir" : "env_file";
  fs::path p(path);
  if (p.is_relative() && source_dir.empty()) {
    report->At(at, std::string(what) + " \"" + path +
                       "\" is relative, and the chain has no source_dir to resolve it against "
                       "(chainctl apply and run fill it in)");
    return "";
  }
  std::string resolved = (p.is_relative() ? fs::path(source_dir) / p : p).lexically_normal();
  if (resolved.size() > 1 && resolved.back() == '/') resolved.pop_back();
  if (!check) return resolved;
  struct stat st {};
  std::string shown = "\"" + path + "\"" + (resolved == path ? "" : " (" + resolved + ")");
  if (stat(resolved.c_str(), &st) != 0) {
    report->At(at, std::string(what) + " " + shown + " not found");
    return "";
  }
  if (folder != S_ISDIR(st.st_mode)) {
    report->At(at,
               std::string(what) + " " + shown + (folder ? " is not a folder" : " is a folder"));
    return "";
  }
  return resolved;
}

}  // namespace

void CheckPlaces(Chain* chain, const LoadOptions& options, Reporter* report) {
  if (chain->source_dir.empty() && !options.require_absolute_executables) {
    std::error_code ec;
    fs::path base = fs::absolute(options.base_dir.empty() ? "." : options.base_dir, ec);
    chain->source_dir = base.lexically_normal();
    if (chain->source_dir.size() > 1 && chain->source_dir.back() == '/') {
      chain->source_dir.pop_back();
    }
  } else if (!chain->source_dir.empty() && fs::path(chain->source_dir).is_relative()) {
    report->At("/source_dir", "source_dir \"" + chain->source_dir + "\" must be an absolute path");
    return;
  }
  const std::string& source = chain->source_dir;
  bool check = options.check_executables;
  std::string chain_dir = source;
  if (!chain->working_dir.empty()) {
    chain_dir = Resolve(chain->working_dir, source, true, check, "/working_dir", report);
  }
  if (!chain->env_file.empty()) Resolve(chain->env_file, source, false, check, "/env_file", report);
  for (size_t i = 0; i < chain->tasks.size(); ++i) {
    TaskSpec& task = chain->tasks[i];
    task.source_dir = source;
    task.cwd = chain_dir;
    if (!task.working_dir.empty()) {
      task.cwd = Resolve(task.working_dir, source, true, check,
                         "/tasks/" + std::to_string(i) + "/working_dir", report);
    }
  }
}

}  // namespace chainctl::internal
