#include "daemon/exec/orphans.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "common/read_file.h"

namespace chainctl::daemon {

namespace {

// The fields of /proc/PID/stat this file needs.
struct ProcStat {
  char state = '?';  // 'Z': a zombie
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  unsigned long flags = 0;  // PF_* (field 9)
  uint64_t start_ticks = 0;
};

constexpr unsigned long kKernelThread = 0x00200000;  // PF_KTHREAD: no environment, ever

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
  fields >> stat.state >> stat.ppid >> stat.pgrp >> stat.session >> skip >> skip >> stat.flags;
  for (int field = 10; field < 22 && fields; ++field) fields >> skip;  // fields 10..21
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

bool Alive(pid_t pid) {
  std::optional<ProcStat> stat = ReadStat(pid);
  return stat && stat->state != 'Z';
}

// The whole of /proc/PID/FILE ("" if it cannot be read).
std::string ReadProcFile(pid_t pid, const char* file) {
  std::string text;
  return ReadFileBytes("/proc/" + std::to_string(pid) + "/" + file, &text) == 0 ? text : "";
}

// Whether the environment `environ` (NUL-separated) holds CHAIN_WORKDIR=PREFIX... (`exact`:
// CHAIN_WORKDIR=PREFIX).
bool HasWorkdirUnder(const std::string& environ, const std::string& prefix, bool exact) {
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

// What a process's environment says of CHAIN_WORKDIR=`prefix` (see HasWorkdirUnder). A process in
// the middle of an execve(2) shows no environment and no command line for a moment (the kernel has
// swapped in its new memory and not yet laid out its arguments there): unknown, look again. A
// process that only cleared its environment still has a command line. Kernel threads have neither,
// ever: never ours. The kernel lays out arguments and environment together, so a command line
// found after an empty environment means the exec may have ended in between: the environment is
// read once more.
enum class Workdir { kOurs, kNotOurs, kInExec };

Workdir WorkdirOf(pid_t pid, const ProcStat& stat, const std::string& prefix, bool exact) {
  std::string environ = ReadProcFile(pid, "environ");
  if (environ.empty()) {
    if (stat.flags & kKernelThread) return Workdir::kNotOurs;
    if (ReadProcFile(pid, "cmdline").empty()) {
      return Alive(pid) ? Workdir::kInExec : Workdir::kNotOurs;
    }
    environ = ReadProcFile(pid, "environ");         // the exec may have ended since the first read
    if (environ.empty()) return Workdir::kNotOurs;  // it cleared its environment
  }
  return HasWorkdirUnder(environ, prefix, exact) ? Workdir::kOurs : Workdir::kNotOurs;
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

bool Contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// Runs `pass` (one look at the processes, killing those it finds; it returns whether one was
// in the middle of an exec) until a pass finds nothing more: a process may fork while a pass
// runs. A pass that met a process in an exec is followed by another 1 ms later, for at most
// 100 ms: an exec is over in well under that, even on a loaded machine.
template <typename Pass>
void KillPasses(const std::vector<pid_t>& killed, Pass pass) {
  auto exec_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  for (int fork_passes = 0; fork_passes < 5;) {
    size_t before = killed.size();
    bool in_exec = pass();
    if (killed.size() != before) {
      ++fork_passes;
    } else if (!in_exec || std::chrono::steady_clock::now() >= exec_deadline) {
      return;
    }
    if (in_exec) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
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
  KillPasses(killed, [&] {
    bool in_exec = false;
    for (pid_t pid : AllPids()) {
      std::optional<ProcStat> stat = ReadStat(pid);
      if (pid == self || !stat || stat->state == 'Z' || Contains(killed, pid)) continue;
      Workdir ours = WorkdirOf(pid, *stat, runs_dir + "/", /*exact=*/false);
      in_exec |= ours == Workdir::kInExec;
      if (ours == Workdir::kOurs && kill(pid, SIGKILL) == 0) killed.push_back(pid);
    }
    return in_exec;
  });
  return killed;
}

std::vector<pid_t> KillEscapees(pid_t leader, const std::string& workdir, bool scan_all) {
  std::vector<pid_t> killed;
  if (leader <= 1 || workdir.empty()) return killed;
  const pid_t self = getpid();
  const pid_t self_session = getsid(0);
  KillPasses(killed, [&] {
    bool in_exec = false;
    for (pid_t pid : PidsCreatedAfter(leader, scan_all)) {
      std::optional<ProcStat> stat = ReadStat(pid);
      if (pid == self || !stat || stat->state == 'Z' || Contains(killed, pid)) continue;
      bool owned = stat->ppid == self && stat->pgrp == pid && stat->session == self_session;
      Workdir ours = owned ? Workdir::kNotOurs : WorkdirOf(pid, *stat, workdir, /*exact=*/true);
      in_exec |= ours == Workdir::kInExec;
      if (ours != Workdir::kOurs) continue;
      if (stat->pgrp == pid) kill(-pid, SIGKILL);  // it leads a group of its own: all of it
      if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
    }
    return in_exec;
  });
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
