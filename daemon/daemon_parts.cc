#include "daemon/daemon_parts.h"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "daemon/exec/orphans.h"
#include "daemon/machine_limits.h"
#include "daemon/util/log.h"

extern char** environ;

namespace chainctl::daemon {

std::string FindExecHelper() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string helper = ec ? "" : (self.parent_path() / "chaind-exec").string();
  if (!helper.empty() && access(helper.c_str(), X_OK) == 0) return helper;
  Log(LogLevel::kWarning, "no spawn helper chaind-exec next to chaind" +
                              (helper.empty() ? std::string() : " (" + helper + ")") +
                              ": tasks with memory or cpu limits will fail to start");
  return "";
}

std::unique_ptr<TaskCgroups> OpenTaskCgroups(const DaemonConfig& config, std::string* why) {
  *why = "--no-task-cgroups";
  std::unique_ptr<TaskCgroups> cgroups =
      config.task_cgroups ? TaskCgroups::Open(config.state_dir, why) : nullptr;
  Log(LogLevel::kInfo,
      cgroups ? "each task runs in a cgroup of its own, under " + cgroups->dir()
              : "tasks run without cgroups (" + *why +
                    "): their descendants that leave the task's process group are found by "
                    "CHAIN_WORKDIR");
  return cgroups;
}

void KillTasksLeftRunning(const std::string& runs_dir) {
  std::vector<pid_t> left = KillTaskProcesses(runs_dir);
  if (left.empty()) return;
  Log(LogLevel::kWarning, "killed " + std::to_string(left.size()) +
                              " task process(es) left running by a previous chaind");
  if (!WaitGone(left, 2000)) Log(LogLevel::kWarning, "some of them are still dying");
}

OrchestratorOptions OrchestratorOptionsFrom(const DaemonConfig& config, const std::string& runs_dir,
                                            uint64_t descriptors, size_t connections) {
  OrchestratorOptions options;
  options.runs_dir = runs_dir;
  options.jobs =
      FitJobs(descriptors, connections, config.jobs ? config.jobs : size_t{MachineCores()});
  options.kill_grace_ms = config.kill_grace_ms;
  options.keep_run_dirs = config.keep_run_files;
  options.keep_runs = config.keep_runs;
  options.keep_runs_for_ms = config.keep_runs_for_ms;
  options.max_log_bytes = config.max_log_bytes;
  options.capacity = CapacityOf(config);
  Log(LogLevel::kInfo, "tasks run " + std::to_string(options.jobs) + " at once, admitted against " +
                           DescribeCapacity(options.capacity));
  for (char** e = environ; *e; ++e) options.base_env.emplace_back(*e);
  return options;
}

// Freed memory goes back to the system when chaind is idle: glibc keeps it in its arenas
// otherwise (RssAnon grew ~5 MB per 1,000 runs with a live heap of ~5 MB). At most once a
// second, so that back-to-back small runs do not pay for it each.
void TrimMemoryWhenIdle(Orchestrator* orchestrator) {
  orchestrator->OnIdle([last = std::chrono::steady_clock::time_point()]() mutable {
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(1)) return;
    last = now;
    malloc_trim(0);
  });
}

PrefetchHooks PrefetchHooksOf(Orchestrator* orchestrator, CacheForecast* forecast) {
  return {
      .latest_chain =
          [orchestrator](const std::string& id) { return orchestrator->LatestChain(id); },
      .warm_launch = [orchestrator](
                         const TaskSpec& task,
                         const std::string& dir) { return orchestrator->WarmLaunch(task, dir); },
      .worker_launch =
          [orchestrator](const std::string& chain_id, const TaskSpec& task) {
            return orchestrator->WorkerLaunch(chain_id, task);
          },
      .expected_hit =
          forecast ? [forecast](const std::string& chain_id,
                                const TaskSpec& task) { return forecast->Expected(chain_id, task); }
                   : PrefetchHooks{}.expected_hit};
}

}  // namespace chainctl::daemon
