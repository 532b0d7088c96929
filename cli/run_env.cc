#include "cli/run_env.h"

#include <fnmatch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "common/chain/dag.h"
#include "common/env_file.h"

namespace chainctl::cli {
namespace {

bool CheckName(const std::string& name, const std::string& option, std::string* err) {
  if (!IsEnvName(name)) {
    *err = option + ": invalid variable name \"" + name + "\" ([A-Za-z_][A-Za-z0-9_]*)";
    return false;
  }
  if (name.starts_with("CHAIN_")) {
    *err = option + ": CHAIN_* variables are set by chaind; rename \"" + name + "\"";
    return false;
  }
  return true;
}

// --pass-env: the variables of `environ` whose names match `pattern` (a name or a glob).
bool PassEnv(const std::string& pattern, char** environ, nlohmann::json* env, std::string* err) {
  bool glob = pattern.find_first_of("*?[") != std::string::npos;
  if (!glob) {
    if (!CheckName(pattern, "--pass-env", err)) return false;
    const char* value = std::getenv(pattern.c_str());
    if (!value) {
      *err = "--pass-env " + pattern + ": chainctl has no such variable";
      return false;
    }
    (*env)[pattern] = value;
    return true;
  }
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    std::string name = entry.substr(0, eq);
    if (fnmatch(pattern.c_str(), name.c_str(), 0) != 0) continue;
    if (!IsEnvName(name) || name.starts_with("CHAIN_")) continue;  // a glob takes what it may
    (*env)[name] = entry.substr(eq + 1);
  }
  return true;
}

}  // namespace

bool CallerEnv(const RunOptions& options, char** environ, nlohmann::json* env, std::string* err) {
  *env = nlohmann::json::object();
  for (const std::string& pattern : options.pass_env) {
    if (!PassEnv(pattern, environ, env, err)) return false;
  }
  for (const std::string& file : options.env_files) {
    EnvPairs pairs;
    if (!ReadEnvFile(file, &pairs, err)) {
      *err = "--env-file: " + *err;
      return false;
    }
    for (auto& [name, value] : pairs) {
      if (!CheckName(name, "--env-file " + file, err)) return false;
      (*env)[name] = std::move(value);
    }
  }
  for (const std::string& spec : options.env) {
    size_t eq = spec.find('=');
    std::string name = spec.substr(0, eq);
    if (!CheckName(name, "--env", err)) return false;
    if (eq != std::string::npos) {
      (*env)[name] = spec.substr(eq + 1);
      continue;
    }
    const char* value = std::getenv(name.c_str());
    if (!value) {
      *err = "--env " + name + ": no value given (NAME=VALUE) and chainctl has no such variable";
      return false;
    }
    (*env)[name] = value;
  }
  return true;
}

bool SelectedTasks(const Chain& chain, const std::vector<std::string>& targets,
                   std::vector<int>* order, std::string* err) {
  Dag dag;
  if (!BuildDag(chain, &dag, err)) return false;
  std::vector<int> indexes;
  for (const std::string& id : targets) {
    int i = chain.FindTask(id);
    if (i < 0) {
      *err = "no task \"" + id + "\" in chain " +
             (chain.chain_id.empty() ? std::string("(unnamed)") : chain.chain_id);
      return false;
    }
    indexes.push_back(i);
  }
  std::vector<bool> wanted = targets.empty() ? std::vector<bool>(chain.tasks.size(), true)
                                             : WithDependencies(dag, indexes);
  order->clear();
  for (int i : dag.topo_order) {
    if (wanted[static_cast<size_t>(i)]) order->push_back(i);
  }
  return true;
}

std::string TaskFolder(const Chain& chain, const TaskSpec& task) {
  std::string where = std::filesystem::path(task.cwd).lexically_relative(chain.source_dir);
  return where.empty() ? "." : where;
}

void PrintDryRun(const Chain& chain, const std::vector<int>& order, const nlohmann::json& env,
                 std::ostream& out) {
  out << "would run " << order.size() << " of " << chain.tasks.size() << " task(s) of "
      << (chain.chain_id.empty() ? std::string("the chain") : chain.chain_id) << ", in order:\n";
  for (int i : order) {
    const TaskSpec& t = chain.tasks[static_cast<size_t>(i)];
    out << "  " << t.task_id;
    if (!t.dependencies.empty()) {
      out << " (after ";
      for (size_t d = 0; d < t.dependencies.size(); ++d)
        out << (d ? ", " : "") << t.dependencies[d];
      out << ")";
    }
    std::string where = TaskFolder(chain, t);
    out << "\n    in " << (where == "." ? "./" : where) << ": "
        << (t.command.empty() ? t.executable_code_location : t.command) << "\n";
    if (!t.description.empty()) out << "    " << t.description << "\n";
  }
  if (!env.empty()) {
    out << "with the caller's environment:";
    for (const auto& [name, value] : env.items()) out << " " << name;
    out << "\n";
  }
}

}  // namespace chainctl::cli
