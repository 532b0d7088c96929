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
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
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
  fields >> stat.state >> stat.ppid >> stat.pgrp >> stat.session;
  for (int field = 7; field < 22 && fields; ++field) fields >> skip;  // fields 7..21
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

// Whether the environment of `pid` holds CHAIN_WORKDIR=PREFIX... (`exact`: CHAIN_WORKDIR=PREFIX).
bool HasWorkdirUnder(pid_t pid, const std::string& prefix, bool exact = false) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string wanted = "CHAIN_WORKDIR=" + prefix;
  for (size_t at = 0; at < environ.size();) {
    size_t end = environ.find('\0', at);
    if (end == std::string::npos) end = environ.size();
    std::string_view entry = std::string_view(environ).substr(at, end - at);
    if (exact ? entry == wanted : entry.starts_with(wanted)) return true;
    at = end + 1;
  }
  return false;
}

// A number from a one-line /proc file (0 if it cannot be read).
long ReadNumber(const char* path) {
  std::ifstream in(path);
  long value = 0;
  in >> value;
  return in ? value : 0;
}

// The pids that may have been created after `after`, oldest first: those up to the last one
// handed out (/proc/sys/kernel/ns_last_pid), wrapping at pid_max. More than 256 (or
// `scan_all`, or an unreadable counter): every pid of /proc instead.
std::vector<pid_t> PidsCreatedAfter(pid_t after, bool scan_all) {
  static const long pid_max = ReadNumber("/proc/sys/kernel/pid_max");
  long last = ReadNumber("/proc/sys/kernel/ns_last_pid");
  if (scan_all || pid_max <= 0 || last <= 0) return AllPids();
  long span = (last - after + pid_max) % pid_max;
  if (span > 256) return AllPids();
  std::vector<pid_t> pids;
  for (long i = 1; i <= span; ++i) {
    long pid = (after + i) % pid_max;
    if (pid > 1) pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
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

std::vector<pid_t> KillEscapees(pid_t leader, const std::string& workdir, bool scan_all) {
  std::vector<pid_t> killed;
  if (leader <= 1 || workdir.empty()) return killed;
  const pid_t self = getpid();
  const pid_t self_session = getsid(0);
  // Passes until one finds nothing more: an escapee may fork while a pass runs.
  for (int pass = 0; pass < 3; ++pass) {
    size_t before = killed.size();
    for (pid_t pid : PidsCreatedAfter(leader, scan_all)) {
      if (pid == self || std::find(killed.begin(), killed.end(), pid) != killed.end()) continue;
      std::optional<ProcStat> stat = ReadStat(pid);
      if (!stat || stat->state == 'Z') continue;
      bool owned = stat->ppid == self && stat->pgrp == pid && stat->session == self_session;
      if (owned || !HasWorkdirUnder(pid, workdir, /*exact=*/true)) continue;
      if (stat->pgrp == pid) kill(-pid, SIGKILL);  // it leads a group of its own: all of it
      if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
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
