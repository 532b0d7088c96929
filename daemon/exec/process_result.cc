#include "daemon/exec/process_result.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "common/read_file.h"
#include "common/units.h"
#include "daemon/exec/process_spawn.h"

namespace chainctl::daemon {
namespace {

using Kind = TaskResult::Kind;

std::string OverLimit(const char* what, uint64_t limit) {
  return std::string(what) + " is over the " + FormatSize(limit) + " limit (max_output)";
}

std::string KilledBy(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) +
         (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
}

// If the task wrote its output file, the file's content replaces stdout.
void UseOutputFile(const TaskLaunch& launch, TaskResult* result) {
  std::string content;
  int error = ReadFileBytes(launch.output_file, &content, launch.max_output_bytes);
  if (error == ENOENT) return;
  if (error == 0) {
    result->output = std::move(content);
    return;
  }
  result->kind = Kind::kOutputTooLarge;
  result->output.clear();
  result->retryable = IsResourceShortage(error);  // EMFILE: chaind's shortage, not the task's
  if (error == EFBIG) {
    result->error = OverLimit("the output file", launch.max_output_bytes);
  } else {
    result->error = "cannot read the output file " + launch.output_file + ": " +
                    (error == EINVAL ? "not a regular file" : std::strerror(error));
  }
}

// What a limit of the launch had to do with a failure, or "": SIGXCPU is the CPU-time limit,
// and so is a SIGKILL once the CPU time reached it (the hard limit); under a memory limit any
// failure may be an allocation that failed.
std::string LimitNote(const TaskLaunch& launch, const TaskResult& result) {
  bool cpu_killed =
      launch.cpu_limit_s > 0 &&
      (result.signal == SIGXCPU ||
       (result.signal == SIGKILL && result.cpu_s >= static_cast<double>(launch.cpu_limit_s)));
  if (cpu_killed) {
    return ": over its CPU-time limit of " + std::to_string(launch.cpu_limit_s) +
           "s (cpu x timeout)";
  }
  if (launch.memory_limit_bytes > 0) {
    return " (under a memory limit of " + FormatSize(launch.memory_limit_bytes) +
           ", where allocations beyond it fail)";
  }
  return "";
}

// The error of a process that ran to its end, or "" for success.
void DescribeEnd(const TaskLaunch& launch, std::optional<int> wait_status, TaskResult* result) {
  if (!wait_status) {
    result->exit_code = -1;
    result->error = "the exit status was lost: another part of the daemon reaped the process";
  } else if (result->signal != 0) {
    result->kind = Kind::kSignaled;
    result->error = KilledBy(result->signal) + LimitNote(launch, *result);
  } else if (result->exit_code != 0) {
    result->error =
        "exited with status " + std::to_string(result->exit_code) + LimitNote(launch, *result);
  } else if (!launch.output_file.empty()) {
    UseOutputFile(launch, result);
  }
}

}  // namespace

void ConcludeResult(const TaskLaunch& launch, std::optional<int> wait_status,
                    std::optional<Kind> stop_reason, TaskResult* result) {
  int status = wait_status.value_or(0);
  result->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  result->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result->kind = stop_reason.value_or(Kind::kExited);
  if (stop_reason == Kind::kTimedOut) {
    result->error = "timed out after " + FormatDuration(Duration(launch.timeout_ms));
  } else if (stop_reason == Kind::kCancelled) {
    result->error = "cancelled";
  } else if (stop_reason == Kind::kOutputTooLarge) {
    result->output.clear();
    result->error = OverLimit("output", launch.max_output_bytes);
  } else {
    DescribeEnd(launch, wait_status, result);
  }
  result->bytes_out = result->output.size();
}

}  // namespace chainctl::daemon
