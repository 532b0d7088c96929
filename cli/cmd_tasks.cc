// chainctl tasks FILE: a chain file's tasks with their descriptions and whether their results are
// cached (DESIGN.md §7, §4 "Cache").
#include <unistd.h>

#include "cli/app.h"
#include "cli/output.h"
#include "cli/run_env.h"

namespace chainctl::cli {

int RunTasks(const TasksOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<Chain> chain = LoadOrReport(options.file, err);
  if (!chain) return kExitInvalid;
  nlohmann::json list = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const TaskSpec& t : chain->tasks) {
    std::string where = TaskFolder(*chain, t);
    std::string deps;
    for (const std::string& d : t.dependencies) deps += (deps.empty() ? "" : ",") + d;
    list.push_back({{"task_id", t.task_id},
                    {"description", t.description},
                    {"dependencies", t.dependencies},
                    {"working_dir", where},
                    {"cache", t.Cached()},
                    {"sources", t.sources}});
    rows.push_back(
        {t.task_id, deps.empty() ? "-" : deps, where, t.description, t.Cached() ? "on" : "off"});
  }
  OutputFormat format = ParseOutputFormat(options.output, isatty(1));
  if (format != OutputFormat::kTable) {
    PrintData(out, list, format);
  } else {
    PrintTable(out, {"task", "after", "in", "description", "cache"}, rows);
  }
  return kExitOk;
}

}  // namespace chainctl::cli
