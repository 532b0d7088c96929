#include "daemon/exec/task_cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "common/read_file.h"

namespace chainctl::daemon {
namespace {

std::string ErrnoText(int error) { return std::strerror(error); }

// The path of chaind's cgroup v2 folder: the cgroup2 mount point plus the "0::" path, or "" with
// *why.
std::string OwnCgroupDir(std::string* why) {
  std::string cgroups, mounts;
  if (int error = ReadFileBytes("/proc/self/cgroup", &cgroups, 1 << 20); error != 0) {
    *why = "cannot read /proc/self/cgroup: " + ErrnoText(error);
    return "";
  }
  std::string path;
  std::istringstream lines(cgroups);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) {
    *why = "no cgroup v2 (/proc/self/cgroup has no \"0::\" line)";
    return "";
  }
  if (int error = ReadFileBytes("/proc/self/mountinfo", &mounts, 16 << 20); error != 0) {
    *why = "cannot read /proc/self/mountinfo: " + ErrnoText(error);
    return "";
  }
  // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER": the first
  // cgroup2 mount whose root is the path or above it.
  std::istringstream mount_lines(mounts);
  for (std::string line; std::getline(mount_lines, line);) {
    size_t dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (root == "/") return point + (path == "/" ? "" : path);
    if (path.rfind(root, 0) == 0 && (path.size() == root.size() || path[root.size()] == '/')) {
      return point + path.substr(root.size());
    }
  }
  *why = "no cgroup2 file system is mounted where chaind's cgroup " + path + " lies";
  return "";
}

// FNV-1a of `text`, as 16 hex digits: a folder name that is the same for the same state folder.
std::string HashName(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

bool WriteFile(const std::string& path, const char* text, int* error) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : write(fd, text, std::strlen(text));
  *error = n < 0 ? errno : 0;
  if (fd >= 0) close(fd);
  return *error == 0;
}

void KillDir(const std::string& dir) {
  int error = 0;
  WriteFile(dir + "/cgroup.kill", "1", &error);
}

// Removes the cgroup `dir` once its processes have exited, waiting at most `wait_ms`. False if
// it is still there (EBUSY: something still runs in it).
bool RemoveWhenEmpty(const std::string& dir, int wait_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (rmdir(dir.c_str()) != 0) {
    if (errno == ENOENT) return true;
    if (errno != EBUSY || std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The cgroups in `dir` (its subfolders).
std::vector<std::string> Children(const std::string& dir) {
  std::vector<std::string> children;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (entry->d_type == DT_DIR && name != "." && name != "..") {
        children.push_back(dir + "/" + name);
      }
    }
    closedir(d);
  }
  return children;
}

// SIGKILLs everything in the cgroups in `dir`, then removes them, waiting up to 1 s in all.
void KillAndRemoveChildren(const std::string& dir) {
  std::vector<std::string> children = Children(dir);
  for (const std::string& child : children) KillDir(child);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (const std::string& child : children) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    RemoveWhenEmpty(child, static_cast<int>(std::max<int64_t>(left.count(), 0)));
  }
}

// Whether a child process can move itself into `probe` (the cgroup.procs of the common
// ancestor must be writable too): the check a spawn would otherwise fail. "" or why not.
std::string ProbeMove(const std::string& probe) {
  int fd = open((probe + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + probe + "/cgroup.procs: " + ErrnoText(errno);
  pid_t pid = fork();
  if (pid == 0) _exit(write(fd, "0", 1) == 1 ? 0 : (errno & 0x7f));
  int fork_error = errno;
  close(fd);
  if (pid < 0) return "cannot fork a probe process: " + ErrnoText(fork_error);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) return "the probe process did not exit";
  if (WEXITSTATUS(status) != 0) {
    return "cannot move a process into " + probe + ": " + ErrnoText(WEXITSTATUS(status));
  }
  return "";
}

}  // namespace

std::unique_ptr<TaskCgroups> TaskCgroups::Open(const std::string& state_dir, std::string* why) {
  std::string own = OwnCgroupDir(why);
  if (own.empty()) return nullptr;
  char* real = realpath(state_dir.c_str(), nullptr);
  std::string name = "chaind-" + HashName(real ? real : state_dir);
  free(real);
  return OpenIn(own, name, why);
}

std::unique_ptr<TaskCgroups> TaskCgroups::OpenIn(const std::string& parent, const std::string& name,
                                                 std::string* why) {
  std::string dir = parent + "/" + name;
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *why = "cannot make the cgroup " + dir + ": " + ErrnoText(errno);
    return nullptr;
  }
  KillAndRemoveChildren(dir);  // an earlier chaind's: its tasks would run unsupervised
  if (access((dir + "/cgroup.kill").c_str(), F_OK) != 0) {
    *why = "the cgroup " + dir + " has no cgroup.kill (Linux 5.14 or later is required)";
    rmdir(dir.c_str());
    return nullptr;
  }
  std::string probe = dir + "/probe";
  if (mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) {
    *why = "cannot make the cgroup " + probe + ": " + ErrnoText(errno);
    rmdir(dir.c_str());
    return nullptr;
  }
  *why = ProbeMove(probe);
  RemoveWhenEmpty(probe, 1000);
  if (!why->empty()) {
    rmdir(dir.c_str());
    return nullptr;
  }
  return std::unique_ptr<TaskCgroups>(new TaskCgroups(dir));
}

TaskCgroups::~TaskCgroups() {
  KillAndRemoveChildren(dir_);
  rmdir(dir_.c_str());
}

bool TaskCgroups::Make(Group* group, std::string* err, int* error) {
  RetryRemovals();
  std::string dir = dir_ + "/t" + std::to_string(next_++);
  int fd = -1;
  *error = mkdir(dir.c_str(), 0755) != 0 ? errno : 0;
  if (*error == 0) {
    fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      *error = errno;
      rmdir(dir.c_str());
    }
  }
  if (*error != 0) {
    *err = "cannot make the task's cgroup " + dir + ": " + ErrnoText(*error);
    return false;
  }
  *group = Group{this, std::move(dir), fd};
  return true;
}

void TaskCgroups::Kill(const Group& group) {
  if (group.valid()) KillDir(group.dir);
}

void TaskCgroups::Release(Group* group) {
  if (!group->valid()) return;
  Kill(*group);
  close(group->procs_fd);
  TaskCgroups* owner = group->owner;
  if (rmdir(group->dir.c_str()) != 0 && errno == EBUSY) owner->waiting_.push_back(group->dir);
  *group = Group{};
  owner->RetryRemovals();
}

bool SpawnInOwnCgroup(TaskCgroups* cgroups, const TaskLaunch& launch,
                      const SpawnAttributes& attributes, const std::string& exec_helper,
                      SpawnedProcess* process, TaskCgroups::Group* group, std::string* err) {
  if (cgroups && !cgroups->Make(group, err, &process->error)) return false;
  if (SpawnProcess(launch, attributes, exec_helper, process, err, group->procs_fd)) return true;
  TaskCgroups::Release(group);
  return false;
}

void TaskCgroups::RetryRemovals() {
  for (size_t i = 0; i < kRetriesPerCall && !waiting_.empty(); ++i) {
    if (rmdir(waiting_.front().c_str()) != 0 && errno == EBUSY) return;  // the oldest first
    waiting_.pop_front();
  }
}

}  // namespace chainctl::daemon
