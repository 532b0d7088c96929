// The parts of chaind made from its configuration (daemon.cc wires them): where the spawn
// helper is, the task cgroups, what a previous chaind left running, the orchestrator's options,
// and what the prefetcher asks of the orchestrator. Each logs what it decided. Loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "daemon/daemon.h"
#include "daemon/exec/task_cgroups.h"
#include "daemon/prefetch/cache_forecast.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"

namespace chainctl::daemon {

// chaind-exec in chaind's own folder (daemon/CMakeLists.txt installs them together), or ""
// with a warning: tasks with limits then fail to start, saying so.
std::string FindExecHelper();

// Tasks in cgroups of their own when chaind can make them (task_cgroups.h); logs which applies,
// and without them says why in *why.
std::unique_ptr<TaskCgroups> OpenTaskCgroups(const DaemonConfig& config, std::string* why);

// Tasks of a chaind that died (crash, kill -9) must not run on unsupervised (orphans.h): kills
// those left under `runs_dir` and waits a little for them to go. Logged.
void KillTasksLeftRunning(const std::string& runs_dir);

// The orchestrator's options from the flags: --jobs (default: the cores) within the descriptors
// left beside `connections`, the capacity the machine's where not given. Logged.
OrchestratorOptions OrchestratorOptionsFrom(const DaemonConfig& config, const std::string& runs_dir,
                                            uint64_t descriptors, size_t connections);

// Freed memory goes back to the system when chaind is idle (see daemon_parts.cc).
void TrimMemoryWhenIdle(Orchestrator* orchestrator);

// What the prefetcher asks the orchestrator: a chain's latest definition, and the launch of a
// prewarmed process or worker for a task; and the task cache's forecast (null: no cache).
PrefetchHooks PrefetchHooksOf(Orchestrator* orchestrator, CacheForecast* forecast);

}  // namespace chainctl::daemon
