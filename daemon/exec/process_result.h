// How an attempt run by ProcessRunner (daemon/exec/process_runner.h) ended, as TaskResult fields:
// kind, exit_code, signal, error, output and bytes_out. The error texts are listed in
// process_runner.h. Any thread.
#pragma once

#include <optional>

#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

// Completes `result`, whose `output` holds the stdout read, for a process of `launch` that
// was reaped with `wait_status` (nullopt: its status was lost). `stop_reason` is why the
// runner killed the process group, if it did (kTimedOut, kCancelled or kOutputTooLarge); it
// is the kind whatever the status. A process that exited 0 with an output file has the
// file's content as its output; reading it is the only I/O here.
void ConcludeResult(const TaskLaunch& launch, std::optional<int> wait_status,
                    std::optional<TaskResult::Kind> stop_reason, TaskResult* result);

}  // namespace chainctl::daemon
