// What a caller adds to a run (orchestrator.h, RunParams): its environment and its selection
// of tasks (DESIGN.md §7: `chainctl run -f FILE [TASK...] --env K=V --env-file F --pass-env G`).
#include <algorithm>
#include <filesystem>

#include "common/env_file.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"

namespace chainctl::daemon {

using nlohmann::json;

std::optional<RunError> Orchestrator::RunEnvironment(
    const Plan& plan, const std::map<std::string, std::string>& env,
    std::shared_ptr<const Chain>* definition) const {
  for (const auto& [name, value] : env) {
    if (!IsEnvName(name) || name.starts_with("CHAIN_")) {
      return RunError{422, "invalid_env",
                      "environment variable \"" + name +
                          "\": names are [A-Za-z_][A-Za-z0-9_]*, and CHAIN_* are chaind's",
                      nullptr};
    }
  }
  const Chain& chain = plan.chain;
  EnvPairs from_file;
  if (!chain.env_file.empty()) {
    std::filesystem::path path(chain.env_file);
    if (path.is_relative()) path = std::filesystem::path(chain.source_dir) / path;
    std::string err;
    if (!ReadEnvFile(path.lexically_normal().string(), &from_file, &err)) {
      return RunError{422, "env_file", "env_file: " + err, nullptr};
    }
    for (const auto& [name, value] : from_file) {
      if (name.starts_with("CHAIN_")) {
        return RunError{422, "env_file",
                        "env_file: " + path.lexically_normal().string() + " sets " + name +
                            ": CHAIN_* variables are chaind's",
                        nullptr};
      }
    }
  }
  if (from_file.empty() && env.empty()) return std::nullopt;  // *definition stays the plan's
  auto copy = std::make_shared<Chain>(chain);
  copy->run_values = true;
  for (TaskSpec& task : copy->tasks) {
    std::map<std::string, std::string> merged;
    for (const auto& [name, value] : from_file) merged[name] = value;  // a later line wins
    for (const auto& [name, value] : task.env) merged[name] = value;
    for (const auto& [name, value] : env) merged[name] = value;
    task.env = std::move(merged);
  }
  *definition = std::move(copy);
  return std::nullopt;
}

std::optional<RunError> Orchestrator::SelectTasks(const Plan& plan,
                                                  const std::vector<std::string>& tasks,
                                                  std::vector<int>* targets) const {
  for (const std::string& id : tasks) {
    int i = plan.chain.FindTask(id);
    if (i < 0) {
      std::string known;
      for (const TaskSpec& t : plan.chain.tasks) {
        if (!known.empty()) known += ", ";
        known += t.task_id;
      }
      if (known.size() > 200) {
        known.resize(200);
        known += "...";
      }
      return RunError{422, "unknown_task",
                      "chain " + plan.version.chain_id + " has no task \"" + id +
                          "\" (its tasks: " + known + ")",
                      nullptr};
    }
    if (std::find(targets->begin(), targets->end(), i) == targets->end()) targets->push_back(i);
  }
  return std::nullopt;
}

size_t Orchestrator::ApplySelection(Run& run) {
  std::vector<bool> selected = WithDependencies(run.plan->dag, run.targets);
  std::vector<TaskState> states(selected.size(), TaskState::kPending);
  for (size_t i = 0; i < states.size(); ++i) {
    if (selected[i]) continue;
    states[i] = TaskState::kSkipped;
    run.tasks[i].error = "not selected";
  }
  run.scheduler->Restore(std::move(states));
  return static_cast<size_t>(std::count(selected.begin(), selected.end(), true));
}

}  // namespace chainctl::daemon
