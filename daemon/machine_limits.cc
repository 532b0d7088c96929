#include "daemon/machine_limits.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

#include "daemon/util/log.h"

namespace chainctl::daemon {
namespace {

// MemTotal of /proc/meminfo in bytes, or 0 if it cannot be read.
uint64_t MachineMemory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemTotal:") return kib * 1024;
  }
  return 0;
}

}  // namespace

unsigned MachineCores() { return std::max(1u, std::thread::hardware_concurrency()); }

uint64_t RaiseDescriptorLimit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return 1024;
  rlim_t was = nofile.rlim_cur;
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) nofile.rlim_cur = was;
  }
  if (nofile.rlim_cur != was) {
    Log(LogLevel::kInfo, "file descriptors: soft limit raised from " + std::to_string(was) +
                             " to the hard limit, " + std::to_string(nofile.rlim_cur));
  }
  return nofile.rlim_cur;
}

void FitConnections(uint64_t descriptors, HttpLimits* limits) {
  size_t quarter = static_cast<size_t>(std::max<uint64_t>(4, descriptors / 4));
  if (limits->max_connections <= quarter) return;
  Log(LogLevel::kWarning, "file descriptors: " + std::to_string(descriptors) +
                              " allowed (ulimit -n): serving at most " + std::to_string(quarter) +
                              " connections at once, not " +
                              std::to_string(limits->max_connections));
  limits->max_connections = quarter;
}

size_t FitJobs(uint64_t descriptors, size_t connections, size_t jobs) {
  constexpr uint64_t kReserved = 32;
  constexpr uint64_t kDescriptorsPerTask = 4;
  uint64_t left = descriptors > connections + kReserved ? descriptors - connections - kReserved : 0;
  auto fit = static_cast<size_t>(std::max<uint64_t>(1, left / kDescriptorsPerTask));
  if (jobs <= fit) return jobs;
  Log(LogLevel::kWarning, "file descriptors: " + std::to_string(descriptors) +
                              " allowed (ulimit -n): running at most " + std::to_string(fit) +
                              " tasks at once, not " + std::to_string(jobs));
  return fit;
}

Capacity CapacityOf(const DaemonConfig& config) {
  Capacity capacity;
  capacity.cpu_millis =
      config.cpu_millis ? config.cpu_millis : 1000 * static_cast<int64_t>(MachineCores());
  capacity.memory_bytes = config.memory_bytes ? config.memory_bytes : MachineMemory();
  if (capacity.memory_bytes == 0) {
    Log(LogLevel::kWarning, "cannot read MemTotal from /proc/meminfo: memory is not admitted");
    capacity.memory_bytes = Capacity::kUnlimitedMemory;
  }
  capacity.gpus = config.gpus;
  return capacity;
}

}  // namespace chainctl::daemon
