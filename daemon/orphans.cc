#include "daemon/orphans.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <thread>

namespace chainctl::daemon {

namespace {

// The fields of /proc/PID/stat this file needs.
struct ProcStat {
  char state = '?';  // 'Z': a zombie
  pid_t pgrp = 0;
  uint64_t start_ticks = 0;
};

std::optional<ProcStat> ReadStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so fields are
  // counted from the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 1));
  ProcStat stat;
  std::string skip;
  pid_t ppid = 0;
  fields >> stat.state >> ppid >> stat.pgrp;
  for (int field = 6; field < 22 && fields; ++field) fields >> skip;  // fields 6..21
  fields >> stat.start_ticks;
  if (!fields) return std::nullopt;
  return stat;
}

// Every numeric entry of /proc: the pids of the system's processes.
std::vector<pid_t> AllPids() {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (!proc) return pids;
  while (dirent* entry = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid > 0 && *end == '\0') pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(proc);
  return pids;
}

// Whether the environment of `pid` holds CHAIN_WORKDIR=PREFIX... .
bool HasWorkdirUnder(pid_t pid, const std::string& prefix) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string wanted = "CHAIN_WORKDIR=" + prefix;
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    if (end == std::string::npos) end = environ.size();
    if (std::string_view(environ).substr(at, end - at).rfind(wanted, 0) == 0) return true;
    at = end + 1;
  }
  return false;
}

bool Alive(pid_t pid) {
  std::optional<ProcStat> stat = ReadStat(pid);
  return stat && stat->state != 'Z';
}

}  // namespace

std::optional<ProcessStamp> StampOf(pid_t pid) {
  std::optional<ProcStat> stat = ReadStat(pid);
  if (!stat) return std::nullopt;
  return ProcessStamp{pid, stat->start_ticks};
}

std::vector<pid_t> KillStampedGroup(const ProcessStamp& stamp) {
  std::vector<pid_t> members;
  if (stamp.pid <= 1) return members;
  // The pid in use by another process than the stamped leader: not ours (if the leader had
  // gone, its pid could not have been reused while members of its group lived).
  std::optional<ProcStat> leader = ReadStat(stamp.pid);
  if (leader && (leader->start_ticks != stamp.start_ticks || leader->pgrp != stamp.pid)) {
    return members;
  }
  for (pid_t pid : AllPids()) {
    std::optional<ProcStat> stat = ReadStat(pid);
    if (stat && stat->pgrp == stamp.pid) members.push_back(pid);
  }
  if (!members.empty()) kill(-stamp.pid, SIGKILL);
  return members;
}

std::vector<pid_t> KillTaskProcesses(const std::string& runs_dir) {
  std::vector<pid_t> killed;
  const pid_t self = getpid();
  // Passes until one finds nothing more: a process may fork while a pass reads /proc, and
  // one in the middle of an exec shows an empty environment for a moment.
  for (int pass = 0; pass < 5; ++pass) {
    size_t before = killed.size();
    for (pid_t pid : AllPids()) {
      if (pid != self && std::find(killed.begin(), killed.end(), pid) == killed.end() &&
          Alive(pid) && HasWorkdirUnder(pid, runs_dir + "/") && kill(pid, SIGKILL) == 0) {
        killed.push_back(pid);
      }
    }
    if (killed.size() == before) break;
  }
  return killed;
}

bool WaitGone(const std::vector<pid_t>& pids, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (pid_t pid : pids) {
    while (Alive(pid)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  return true;
}

}  // namespace chainctl::daemon
