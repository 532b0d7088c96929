#include "daemon/run/task_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

namespace chainctl::daemon {

using nlohmann::json;

namespace {

constexpr char kKeyTag[] = "chainctl-task-key-v1";
constexpr size_t kExplainFiles = 3;  // files named by ExplainMiss before "and N more"

// An absolute path below `dir` as a path relative to it; others as they are.
std::string RelativeTo(const std::string& dir, const std::string& path) {
  if (!dir.empty() && path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
      path[dir.size()] == '/') {
    return path.substr(dir.size() + 1);
  }
  return path;
}

json DefinitionJson(const TaskSpec& spec) {
  json j = {{"command", spec.command},
            {"executable", RelativeTo(spec.source_dir, spec.executable_code_location)},
            {"args", spec.args},
            {"working_dir", spec.working_dir},
            {"input_map", spec.input_map},
            {"input_files", spec.input_files},
            {"sources", spec.sources},
            {"outputs", spec.outputs},
            {"output_schema", spec.output_schema},
            {"mode", static_cast<int>(spec.mode)}};
  return j;
}

// The content hash of the file at `path`, from the memo when its stamp is unchanged.
bool HashFile(const std::string& path, HashMemo* memo, Hash128* hash, std::string* err) {
  int64_t start = memo ? memo->Now() : 0;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    *err = "cannot read " + path + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  FileStamp stamp = FileStamp::Of(st);
  if (memo) {
    if (std::optional<Hash128> known = memo->Lookup(path, stamp)) {
      close(fd);
      *hash = *known;
      return true;
    }
  }
  auto buffer = std::make_unique<char[]>(kHashReadBuffer);
  uint64_t bytes = 0;
  int error = HashFd(fd, buffer.get(), kHashReadBuffer, hash, &bytes);
  close(fd);
  if (error != 0) {
    *err = "cannot read " + path + ": " + std::strerror(error);
    return false;
  }
  if (memo && bytes == stamp.size) memo->Store(path, stamp, *hash, start);
  return true;
}

// The files below each dependency's out/ folder, named by the dependency's id (the folder above).
bool HashDepFiles(const std::vector<std::string>& dirs, Hash128* out, std::string* err) {
  std::string all;
  for (const std::string& dir : dirs) {
    SourcesDigest digest;
    if (!HashSources(dir, {"**"}, nullptr, &digest, err)) return false;
    std::string name = dir.substr(0, dir.rfind('/'));
    name = name.substr(name.rfind('/') + 1);
    all += name + '\0' + digest.digest.Hex() + '\n';
  }
  *out = HashBytes(all);
  return true;
}

std::string HexOr(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// "src/a.py changed", "src/b.py added", "src/c.py removed": what differs between the recorded
// sources and these, in path order, at most kExplainFiles named.
std::string SourceChanges(const json& last, const SourcesDigest& now) {
  std::vector<std::string> changes;
  std::set<std::string> seen;
  for (const SourceFile& f : now.entries) {
    seen.insert(f.path);
    auto it = last.find(f.path);
    if (it == last.end()) {
      changes.push_back(f.path + " added");
    } else if (!it->is_string() || it->get<std::string>() != f.hash.Hex()) {
      changes.push_back(f.path + " changed");
    }
  }
  for (const auto& [path, hash] : last.items()) {
    if (!seen.count(path)) changes.push_back(path + " removed");
  }
  std::string text;
  for (size_t i = 0; i < changes.size() && i < kExplainFiles; ++i) {
    text += (i ? ", " : "") + changes[i];
  }
  if (changes.size() > kExplainFiles) {
    text += " and " + std::to_string(changes.size() - kExplainFiles) + " more";
  }
  return text;
}

}  // namespace

bool ComputeTaskKey(const TaskKeyRequest& request, HashMemo* memo, TaskKeyParts* parts,
                    std::string* err) {
  const TaskSpec& spec = request.spec;
  parts->definition = HashBytes(DefinitionJson(spec).dump());
  parts->executable = {};
  if (spec.command.empty() && !spec.executable_code_location.empty() &&
      !HashFile(spec.executable_code_location, memo, &parts->executable, err)) {
    return false;
  }
  parts->input = HashBytes(request.input_json);
  std::string env;
  for (const auto& [name, value] : spec.env) env += name + '\0' + value + '\0';
  parts->env = HashBytes(env);
  if (!HashDepFiles(request.dep_dirs, &parts->dep_files, err)) return false;
  parts->sources = {};
  if (spec.sources.empty()) return true;
  return HashSources(spec.source_dir, spec.sources, memo, &parts->sources, err);
}

Hash128 CacheKey(const TaskKeyParts& parts) {
  std::string all = kKeyTag;
  for (const Hash128* h : {&parts.definition, &parts.executable, &parts.input, &parts.env,
                           &parts.dep_files, &parts.sources.digest}) {
    all += '\n' + h->Hex();
  }
  return HashBytes(all);
}

json DescribeKeyParts(const TaskKeyParts& parts) {
  json sources = json::object();
  for (const SourceFile& f : parts.sources.entries) sources[f.path] = f.hash.Hex();
  return {{"definition", parts.definition.Hex()}, {"executable", parts.executable.Hex()},
          {"input", parts.input.Hex()},           {"env", parts.env.Hex()},
          {"dep_files", parts.dep_files.Hex()},   {"sources", std::move(sources)}};
}

std::string ExplainMiss(const json& last, const TaskKeyParts& parts) {
  if (!last.is_object()) return "first run";
  auto sources = last.find("sources");
  std::string changed = SourceChanges(
      sources != last.end() && sources->is_object() ? *sources : json::object(), parts.sources);
  if (!changed.empty()) return changed;
  const std::pair<const char*, const Hash128*> others[] = {{"input", &parts.input},
                                                           {"definition", &parts.definition},
                                                           {"executable", &parts.executable},
                                                           {"env", &parts.env},
                                                           {"dep_files", &parts.dep_files}};
  for (const auto& [name, hash] : others) {
    if (HexOr(last, name) == hash->Hex()) continue;
    return std::string(name) == "dep_files" ? "files from dependencies changed"
                                            : std::string(name) + " changed";
  }
  return "no entry for this key";
}

}  // namespace chainctl::daemon
