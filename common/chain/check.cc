// Checks across the fields of a decoded chain (DESIGN.md §2).
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <unordered_map>
#include <unordered_set>

#include "common/chain/dag.h"
#include "common/chain/internal.h"
#include "common/json_pointer.h"
#include "common/json_schema.h"
#include "common/source_glob.h"

namespace chainctl::internal {
namespace {

namespace fs = std::filesystem;

std::string TaskAt(size_t i) { return "/tasks/" + std::to_string(i); }

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The node at `pointer` in the parsed document, or null if there is none.
const nlohmann::json& Raw(const SourceDoc& doc, const std::string& pointer) {
  static const nlohmann::json kNull;
  try {
    return doc.root.at(nlohmann::json::json_pointer(pointer));
  } catch (const nlohmann::json::exception&) {
    return kNull;
  }
}

class ChainChecker {
 public:
  ChainChecker(Chain* chain, const LoadOptions& options, Reporter* report)
      : chain_(*chain), options_(options), report_(*report) {}

  void Run();

 private:
  void CheckIds();
  void CheckProgram(size_t i);
  void CheckExecutable(size_t i);
  void CheckDependencies(size_t i);
  void CheckCycles();
  void CheckSchemas(size_t i);
  void CheckConditions(size_t i);
  void CheckInputMap(size_t i);
  void CheckEnv(size_t i);
  void CheckInputFiles(size_t i);
  void CheckCacheGlobs(size_t i);
  void CheckResources(size_t i);
  // Reports `pointer_text` (found at `at`) unless it is a valid JSON Pointer
  // whose first token is "trigger" or an ancestor of task i.
  void CheckDataPath(size_t i, const std::string& pointer_text, const std::string& at,
                     const char* what);
  const std::unordered_set<std::string>& Ancestors(size_t i);

  Chain& chain_;
  const LoadOptions& options_;
  Reporter& report_;
  std::unordered_map<std::string, size_t> index_;  // task_id -> first task with it
  std::unordered_map<size_t, std::unordered_set<std::string>> ancestors_;
};

void ChainChecker::Run() {
  CheckIds();
  for (size_t i = 0; i < chain_.tasks.size(); ++i) {
    CheckProgram(i);
    CheckDependencies(i);
    CheckSchemas(i);
    CheckEnv(i);
    CheckInputFiles(i);
    CheckCacheGlobs(i);
    CheckResources(i);
  }
  CheckCycles();
  for (size_t i = 0; i < chain_.tasks.size(); ++i) {
    CheckConditions(i);
    CheckInputMap(i);
  }
}

void ChainChecker::CheckIds() {
  for (size_t i = 0; i < chain_.tasks.size(); ++i) {
    const std::string& id = chain_.tasks[i].task_id;
    if (id.empty()) continue;  // missing or mistyped: the schema check said so
    std::string at = TaskAt(i) + "/task_id";
    if (id == "trigger") {
      report_.At(at,
                 "task id \"trigger\" is reserved: it names the run's input in "
                 "`when` and `input_map` paths");
    }
    auto [it, inserted] = index_.emplace(id, i);
    if (!inserted) {
      SourcePos first = report_.doc().ValuePos(TaskAt(it->second) + "/task_id");
      report_.At(at, "duplicate task id " + Quote(id) + " (first defined at line " +
                         std::to_string(first.line) + ")");
    }
  }
}

void ChainChecker::CheckProgram(size_t i) {
  const TaskSpec& t = chain_.tasks[i];
  bool has_exe = !t.executable_code_location.empty();
  bool has_cmd = !t.command.empty();
  const nlohmann::json& raw = Raw(report_.doc(), TaskAt(i));
  if (!raw.is_object()) return;
  if (!raw.contains("executable_code_location") && !raw.contains("command")) {
    report_.At(TaskAt(i), "task needs \"executable_code_location\" or \"command\"");
  } else if (raw.contains("executable_code_location") && raw.contains("command")) {
    report_.AtKey(TaskAt(i) + "/command",
                  "\"command\" and \"executable_code_location\" are mutually exclusive");
  } else if (has_exe && !has_cmd) {
    CheckExecutable(i);
  }
  if (has_cmd && !t.args.empty()) {
    report_.AtKey(TaskAt(i) + "/args",
                  "\"args\" goes with \"executable_code_location\"; "
                  "put arguments in the command itself");
  }
}

void ChainChecker::CheckExecutable(size_t i) {
  std::string& location = chain_.tasks[i].executable_code_location;
  const std::string at = TaskAt(i) + "/executable_code_location";
  if (location.starts_with("cas:")) {
    static const std::regex kCas("cas:sha256:[0-9a-f]{64}");
    if (!std::regex_match(location, kCas)) {
      report_.At(at, "invalid content address " + Quote(location) +
                         ": expected cas:sha256: and 64 lowercase hex digits");
    }
    return;
  }
  if (location.find("://") != std::string::npos) {
    report_.At(at, "executable_code_location must be a local path or cas:sha256:HEX, got " +
                       Quote(location));
    return;
  }
  fs::path path(location);
  if (path.is_relative() && options_.require_absolute_executables) {
    report_.At(at, "executable " + Quote(location) +
                       " must be an absolute path here (chainctl apply makes paths absolute)");
    return;
  }
  if (path.is_relative()) {
    path = fs::path(options_.base_dir.empty() ? "." : options_.base_dir) / path;
  }
  std::error_code ec;
  fs::path absolute = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) absolute = path.lexically_normal();
  std::string shown = location == absolute.string()
                          ? Quote(location)
                          : Quote(location) + " (" + absolute.string() + ")";
  if (options_.check_executables) {
    struct stat st;
    if (stat(absolute.c_str(), &st) != 0) {
      report_.At(at, "executable " + shown + " not found");
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      report_.At(at, "executable " + shown + " is not a regular file");
      return;
    }
    if (access(absolute.c_str(), X_OK) != 0) {
      report_.At(at, "executable " + shown + " is not executable (chmod +x?)");
      return;
    }
  }
  location = absolute.string();
}

void ChainChecker::CheckDependencies(size_t i) {
  const TaskSpec& t = chain_.tasks[i];
  const nlohmann::json* deps = &Raw(report_.doc(), TaskAt(i) + "/dependencies");
  if (!deps->is_array()) return;
  for (size_t k = 0; k < deps->size(); ++k) {
    if (!(*deps)[k].is_string()) continue;
    const std::string d = (*deps)[k].get<std::string>();
    std::string at = TaskAt(i) + "/dependencies/" + std::to_string(k);
    if (!t.task_id.empty() && d == t.task_id) {
      report_.At(at, "task " + Quote(d) + " depends on itself");
    } else if (!index_.contains(d)) {
      std::string message = "unknown task " + Quote(d);
      std::vector<std::string> ids;
      for (const TaskSpec& other : chain_.tasks) {
        if (!other.task_id.empty()) ids.push_back(other.task_id);
      }
      std::string guess = ClosestMatch(d, ids);
      if (!guess.empty()) message += " (did you mean " + Quote(guess) + "?)";
      report_.At(at, message);
    }
  }
}

void ChainChecker::CheckCycles() {
  const size_t n = chain_.tasks.size();
  std::vector<std::vector<int>> deps(n);
  std::vector<std::string> ids(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = chain_.tasks[i].task_id;
    for (const std::string& d : chain_.tasks[i].dependencies) {
      auto it = index_.find(d);
      if (it != index_.end()) deps[i].push_back(static_cast<int>(it->second));
    }
  }
  for (const std::vector<int>& cycle : FindCycles(deps)) {
    // Reported at the dependency that closes the cycle.
    size_t from = static_cast<size_t>(cycle[cycle.size() - 2]);
    const std::string& to = ids[static_cast<size_t>(cycle.back())];
    const auto& list = chain_.tasks[from].dependencies;
    size_t k = static_cast<size_t>(std::find(list.begin(), list.end(), to) - list.begin());
    // `dependencies` may hold non-strings that decoding skipped: find the raw index.
    const nlohmann::json& raw = Raw(report_.doc(), TaskAt(from) + "/dependencies");
    for (size_t r = 0, seen = 0; r < raw.size(); ++r) {
      if (!raw[r].is_string()) continue;
      if (seen++ == k) {
        k = r;
        break;
      }
    }
    report_.At(TaskAt(from) + "/dependencies/" + std::to_string(k), DescribeCycle(cycle, ids));
  }
}

void ChainChecker::CheckSchemas(size_t i) {
  const TaskSpec& t = chain_.tasks[i];
  for (auto [key, schema] :
       {std::pair{"input_schema", &t.input_schema}, std::pair{"output_schema", &t.output_schema}}) {
    // The meta-schema's anyOf alternatives give several messages for one
    // mistake; the first one at each place says enough.
    std::unordered_set<std::string> reported;
    for (const JsonSchema::Violation& v : CheckSchemaDocument(*schema)) {
      if (!reported.insert(v.pointer).second) continue;
      std::string message = v.pointer.ends_with("/type")
                                ? "\"type\" must be array, boolean, integer, null, number, object "
                                  "or string, or a list of them"
                                : v.message;
      report_.At(TaskAt(i) + "/" + key + v.pointer, "invalid JSON Schema: " + message);
    }
  }
}

const std::unordered_set<std::string>& ChainChecker::Ancestors(size_t i) {
  auto [it, inserted] = ancestors_.try_emplace(i);
  if (!inserted) return it->second;
  std::vector<size_t> todo{i};
  while (!todo.empty()) {
    size_t t = todo.back();
    todo.pop_back();
    for (const std::string& d : chain_.tasks[t].dependencies) {
      auto found = index_.find(d);
      if (found != index_.end() && it->second.insert(d).second) todo.push_back(found->second);
    }
  }
  return it->second;
}

void ChainChecker::CheckDataPath(size_t i, const std::string& pointer_text, const std::string& at,
                                 const char* what) {
  std::string err;
  auto tokens = SplitJsonPointer(pointer_text, &err);
  if (!tokens) {
    report_.At(at, "invalid " + std::string(what) + " " + Quote(pointer_text) + ": " + err);
    return;
  }
  const std::string first = tokens->empty() ? "" : tokens->front();
  if (first == "trigger" || Ancestors(i).contains(first)) return;
  const auto& deps = chain_.tasks[i].dependencies;
  if (std::find(deps.begin(), deps.end(), first) != deps.end()) return;  // unknown: reported
  std::string message = std::string(what) + " " + Quote(pointer_text) +
                        " must start with /trigger or a dependency of " +
                        Quote(chain_.tasks[i].task_id);
  std::string known;
  for (const std::string& d : deps) {
    if (index_.contains(d)) known += (known.empty() ? "/" : ", /") + d;
  }
  if (!known.empty()) message += " (" + known + ")";
  report_.At(at, message);
}

void ChainChecker::CheckConditions(size_t i) {
  const nlohmann::json& when = Raw(report_.doc(), TaskAt(i) + "/when");
  std::vector<std::pair<const nlohmann::json*, std::string>> conditions;
  if (when.is_object()) conditions.emplace_back(&when, TaskAt(i) + "/when");
  if (when.is_array()) {
    for (size_t k = 0; k < when.size(); ++k) {
      conditions.emplace_back(&when[k], TaskAt(i) + "/when/" + std::to_string(k));
    }
  }
  for (const auto& [c, at] : conditions) {
    if (!c->is_object()) continue;
    if (c->contains("path") && (*c)["path"].is_string()) {
      CheckDataPath(i, (*c)["path"].get<std::string>(), at + "/path", "path");
    }
    bool matches = c->value("op", nlohmann::json()) == "matches";
    if (matches && c->contains("value") && (*c)["value"].is_string()) {
      const std::string regex = (*c)["value"].get<std::string>();
      try {
        if (regex.size() > 1000) throw std::regex_error(std::regex_constants::error_complexity);
        std::regex compiled(regex, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        report_.At(at + "/value", "invalid regular expression: " + std::string(e.what()));
      }
    }
  }
}

void ChainChecker::CheckInputMap(size_t i) {
  for (const auto& [field, pointer] : chain_.tasks[i].input_map) {
    CheckDataPath(i, pointer, TaskAt(i) + "/input_map/" + EscapePointerToken(field),
                  "input_map path");
  }
}

void ChainChecker::CheckEnv(size_t i) {
  static const std::regex kName("[A-Za-z_][A-Za-z0-9_]*");
  for (const auto& [name, value] : chain_.tasks[i].env) {
    std::string at = TaskAt(i) + "/env/" + EscapePointerToken(name);
    if (!std::regex_match(name, kName)) {
      report_.AtKey(at, "invalid environment variable name " + Quote(name));
    } else if (name.starts_with("CHAIN_")) {
      report_.AtKey(at, "environment variables CHAIN_* are set by chaind; rename " + Quote(name));
    }
  }
}

// Local inputs (paths or globs) are made absolute against the chain file's folder, as
// executables are; chaind, which has no file, needs them absolute.
void ChainChecker::CheckInputFiles(size_t i) {
  auto& files = chain_.tasks[i].input_files;
  for (size_t k = 0; k < files.size(); ++k) {
    size_t scheme = files[k].find("://");
    if (scheme == std::string::npos) {
      if (files[k].empty() || files[k][0] == '/') continue;
      if (options_.require_absolute_executables) {
        report_.At(TaskAt(i) + "/inputs/files/" + std::to_string(k),
                   "input " + Quote(files[k]) +
                       " must be an absolute path here (chainctl apply makes paths absolute)");
        continue;
      }
      std::error_code ec;
      fs::path base = fs::absolute(options_.base_dir.empty() ? "." : options_.base_dir, ec);
      files[k] = (base / files[k]).lexically_normal().string();
      continue;
    }
    std::string name = files[k].substr(0, scheme);
    if (name != "http" && name != "https") {
      report_.At(
          TaskAt(i) + "/inputs/files/" + std::to_string(k),
          "unsupported URL scheme " + Quote(name) + ": inputs are local paths or http(s) URLs");
    }
  }
}

// `sources` and `outputs` keep the globs as written (relative to source_dir); each must follow
// the grammar of common/source_glob.h. Reported at the element, found in the raw list because
// decoding skipped non-strings (which the schema check reported).
void ChainChecker::CheckCacheGlobs(size_t i) {
  for (const char* field : {"sources", "outputs"}) {
    const std::string list = TaskAt(i) + "/" + field;
    const nlohmann::json& raw = Raw(report_.doc(), list);
    if (!raw.is_array()) continue;
    for (size_t k = 0; k < raw.size(); ++k) {
      std::string err;
      if (raw[k].is_string() && !CheckSourceGlob(raw[k].get<std::string>(), field, &err)) {
        report_.At(list + "/" + std::to_string(k), err);
      }
    }
  }
}

void ChainChecker::CheckResources(size_t i) {
  if (!options_.resource_misfits) return;
  const TaskSpec& t = chain_.tasks[i];
  for (const ResourceMisfit& m : options_.resource_misfits(t.resource_requirements)) {
    report_.At(TaskAt(i) + "/resource_requirements/" + m.field,
               "task " + t.task_id + " " + m.message);
  }
}

}  // namespace

void CheckChain(Chain* chain, const LoadOptions& options, Reporter* report) {
  ChainChecker(chain, options, report).Run();
  CheckPlaces(chain, options, report);
}

}  // namespace chainctl::internal
