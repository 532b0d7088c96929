#include "daemon/exec/process_spawn.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace chainctl::daemon {
namespace {

// The daemon's descriptors of one spawn; closes those still held when it goes away.
struct SpawnFds {
  int stdin_pipe[2] = {-1, -1};   // [0] becomes the child's 0; [1] is the daemon's
                                  // (or [0] is launch.stdin_file, and [1] stays -1)
  int stdout_pipe[2] = {-1, -1};  // [1] becomes the child's 1; [0] is the daemon's
  int log = -1;                   // becomes the child's 2
  int report_pipe[2] = {-1, -1};  // through the helper only: [1] becomes the child's 3

  SpawnFds() = default;
  SpawnFds(const SpawnFds&) = delete;
  SpawnFds& operator=(const SpawnFds&) = delete;
  ~SpawnFds() {
    for (int fd : {stdin_pipe[0], stdin_pipe[1], stdout_pipe[0], stdout_pipe[1], log,
                   report_pipe[0], report_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
  }
  // Hands `*fd` over to the caller.
  static int Release(int* fd) {
    int released = *fd;
    *fd = -1;
    return released;
  }
};

// posix_spawn_file_actions_t, destroyed with the object.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

std::string ErrnoText(int error) { return std::strerror(error); }

// The descriptor the helper's report pipe becomes in the child.
constexpr int kReportFd = 3;

// Keeps `*fd` (close-on-exec) at `lowest` or above, so the child's dup2s onto lower numbers
// cannot overwrite a source before it is copied (a daemon started with a closed stdio
// descriptor gets the lowest numbers for its pipes). Returns 0 or an errno.
int MoveAbove(int* fd, int lowest) {
  if (*fd >= lowest) return 0;
  int moved = fcntl(*fd, F_DUPFD_CLOEXEC, lowest);
  int error = moved < 0 ? errno : 0;
  close(*fd);
  *fd = moved;
  return error;
}

int MoveAboveStdio(int* fd) { return MoveAbove(fd, 3); }

// Launches with limits go through the spawn helper.
bool HasLimits(const TaskLaunch& launch) {
  return launch.memory_limit_bytes > 0 || launch.cpu_limit_s > 0;
}

// The report pipe: the daemon's end non-blocking, the child's above kReportFd (dup2 onto
// itself would keep close-on-exec).
bool MakeReportPipe(int ends[2], std::string* err, int* error) {
  *error = pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0 ? errno : 0;
  if (*error == 0) *error = MoveAbove(&ends[1], kReportFd + 1);
  if (*error != 0) *err = "cannot make a pipe: " + ErrnoText(*error);
  return *error == 0;
}

// chaind-exec's command line for `launch` (exec_helper.cc).
std::vector<std::string> HelperArgv(const TaskLaunch& launch, const std::string& helper) {
  std::vector<std::string> argv = {helper};
  if (launch.memory_limit_bytes > 0) {
    argv.push_back("--data=" + std::to_string(launch.memory_limit_bytes));
  }
  if (launch.cpu_limit_s > 0) argv.push_back("--cpu=" + std::to_string(launch.cpu_limit_s));
  argv.push_back("--report-fd=" + std::to_string(kReportFd));
  argv.push_back("--");
  argv.insert(argv.end(), launch.argv.begin(), launch.argv.end());
  return argv;
}

bool MakePipe(int ends[2], std::string* err, int* error) {
  *error = pipe2(ends, O_CLOEXEC) < 0 ? errno : 0;
  if (*error == 0) *error = MoveAboveStdio(&ends[0]);
  if (*error == 0) *error = MoveAboveStdio(&ends[1]);
  if (*error != 0) *err = "cannot make a pipe: " + ErrnoText(*error);
  return *error == 0;
}

bool OpenInput(const std::string& path, int* fd, std::string* err, int* error) {
  *fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  *error = *fd < 0 ? errno : MoveAboveStdio(fd);
  if (*error != 0) *err = "cannot open the input file " + path + ": " + ErrnoText(*error);
  return *error == 0;
}

// Opens the log empty. Not with O_TRUNC: on ext4 truncating a file (even an empty one) makes
// its last close write the data back at once (auto_da_alloc), which would add a disk write to
// the exit of every task that logs; an existing non-empty file is truncated explicitly.
bool OpenLog(const std::string& path, int* fd, std::string* err, int* error) {
  const std::string& name = path.empty() ? "/dev/null" : path;
  *fd = open(name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  *error = *fd < 0 ? errno : 0;
  struct stat st {};
  if (*error == 0 && fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      ftruncate(*fd, 0) != 0) {
    *error = errno;
  }
  if (*error == 0) *error = MoveAboveStdio(fd);
  if (*error != 0) *err = "cannot open the log file " + name + ": " + ErrnoText(*error);
  return *error == 0;
}

// dup2s onto 0, 1 and 2 (and the report pipe onto 3), the working directory, then every
// other descriptor closed (they are close-on-exec already; this also covers descriptors a
// library left inheritable). Returns 0 or an errno (ENOMEM).
int AddFileActions(const SpawnFds& fds, const std::string& workdir, FileActions* actions) {
  int rc = posix_spawn_file_actions_adddup2(actions->get(), fds.stdin_pipe[0], 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(actions->get(), fds.stdout_pipe[1], 1);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(actions->get(), fds.log, 2);
  int first_closed = 3;
  if (rc == 0 && fds.report_pipe[1] >= 0) {
    rc = posix_spawn_file_actions_adddup2(actions->get(), fds.report_pipe[1], kReportFd);
    first_closed = kReportFd + 1;
  }
  if (rc == 0 && !workdir.empty()) {
    rc = posix_spawn_file_actions_addchdir_np(actions->get(), workdir.c_str());
  }
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(actions->get(), first_closed);
  return rc;
}

// A null-terminated array of pointers into `strings`, which must outlive it.
std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

// 0 if `path` is a directory the daemon may enter, else why not (an errno).
int WorkdirError(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) < 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  return access(path.c_str(), X_OK) < 0 ? errno : 0;
}

// Where the task starts: its cwd, else its workdir ("" = the daemon's).
const std::string& CurrentDir(const TaskLaunch& launch) {
  return launch.cwd.empty() ? launch.workdir : launch.cwd;
}

// posix_spawn reports a failed chdir and a failed exec alike; tell them apart afterwards.
// `program` is what was executed: the task's, or "the spawn helper PATH".
std::string DescribeSpawnError(const TaskLaunch& launch, const std::string& program, int error) {
  const std::string& dir = CurrentDir(launch);
  int workdir_error = dir.empty() ? 0 : WorkdirError(dir);
  if (workdir_error != 0) {
    return "cannot enter the " + std::string(launch.cwd.empty() ? "workdir " : "working_dir ") +
           dir + ": " + ErrnoText(workdir_error);
  }
  return "cannot run " + program + ": " + ErrnoText(error);
}

// What the child of CloneSpawn needs, all prepared by the parent: the child shares the parent's
// memory (CLONE_VM) and may only make system calls.
struct CloneChild {
  const SpawnFds* fds;
  const char* workdir;  // nullptr: the daemon's
  int cgroup_procs_fd;
  char* const* argv;
  char* const* envp;
  int error = 0;       // why the child could not exec (it exits 127 then)
  bool moved = false;  // into its cgroup
};

// The child of CloneSpawn: what posix_spawn does with SpawnAttributes and AddFileActions, and
// moving itself into its cgroup before execve. Not instrumented: it runs on a stack of its own,
// in the parent's memory, until execve. Its copies of the daemon's descriptors are closed first:
// the move into the cgroup can take milliseconds (the kernel's cgroup migration), and a chaind
// killed meanwhile must not leave its listening socket open in a child.
__attribute__((no_sanitize("address", "undefined"))) int CloneChildMain(void* arg) {
  auto* child = static_cast<CloneChild*>(arg);
  const SpawnFds& fds = *child->fds;
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  // The task keeps 0, 1, 2 and the report fd; the cgroup's procs file goes just above them.
  int procs = fds.report_pipe[1] >= 0 ? kReportFd + 1 : 3;
  bool ok = dup2(fds.stdin_pipe[0], 0) == 0 && dup2(fds.stdout_pipe[1], 1) == 1 &&
            dup2(fds.log, 2) == 2 &&
            (fds.report_pipe[1] < 0 || dup2(fds.report_pipe[1], kReportFd) == kReportFd) &&
            dup2(child->cgroup_procs_fd, procs) == procs &&
            close_range(static_cast<unsigned>(procs) + 1, ~0U, 0) == 0;
  ok = ok && (child->moved = write(procs, "0", 1) == 1) && close(procs) == 0;
  for (int sig = 1; ok && sig < 32; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &default_action, nullptr);
  }
  ok = ok && setpgid(0, 0) == 0 && (child->workdir == nullptr || chdir(child->workdir) == 0);
  if (ok) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(child->argv[0], child->argv, child->envp);
  }
  child->error = errno;
  _exit(127);
}

// posix_spawn's way (clone with CLONE_VM | CLONE_VFORK on a stack of its own; the parent waits
// until the child has exec'd or exited), with the child moving itself into a cgroup first, so
// that nothing of the task runs outside it. glibc 2.36 has no posix_spawn for a cgroup
// (posix_spawnattr_setcgroup_np came in 2.39). Returns 0 or an errno (the child's if it could
// not exec; then it is reaped, and *moved says whether it got as far as its cgroup).
int CloneSpawn(const SpawnFds& fds, const std::string& workdir, int cgroup_procs_fd,
               char* const* argv, char* const* envp, pid_t* pid, bool* moved) {
  constexpr size_t kStackBytes = 256 << 10;
  void* stack = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return errno;
  CloneChild child{&fds, workdir.empty() ? nullptr : workdir.c_str(), cgroup_procs_fd, argv, envp};
  // No signal handler of the daemon may run in the child, in the daemon's memory.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int cloned = clone(CloneChildMain, static_cast<char*>(stack) + kStackBytes,
                     CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
  int error = cloned < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kStackBytes);
  *moved = child.moved;
  if (error != 0) return error;
  if (child.error != 0) {
    while (waitpid(cloned, nullptr, 0) < 0 && errno == EINTR) {
    }
    return child.error;
  }
  *pid = cloned;
  return 0;
}

// The descriptors of one spawn of `launch`: stdin (a pipe, or launch.stdin_file), stdout, the
// log and, through the spawn helper (`helped`), the report pipe. False with `*err` and `*error`
// at the first that fails (~SpawnFds closes those already open).
bool OpenSpawnFds(const TaskLaunch& launch, bool helped, SpawnFds* fds, std::string* err,
                  int* error) {
  return (launch.stdin_file.empty()
              ? MakePipe(fds->stdin_pipe, err, error)
              : OpenInput(launch.stdin_file, &fds->stdin_pipe[0], err, error)) &&
         MakePipe(fds->stdout_pipe, err, error) &&
         OpenLog(launch.log_path, &fds->log, err, error) &&
         (!helped || MakeReportPipe(fds->report_pipe, err, error));
}

// pidfd_open(pid), always close-on-exec. Without one the process cannot be watched: it is killed
// and reaped, and -1 is returned with `*err` and `*error`.
int OpenPidfd(pid_t pid, std::string* err, int* error) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) return pidfd;
  *error = errno;
  KillGroupAndReap(pid);
  *err = "cannot watch the task's process: pidfd_open: " + ErrnoText(*error) +
         (*error == ENOSYS ? " (Linux 5.3 or later is required)" : "");
  return -1;
}

}  // namespace

SpawnAttributes::SpawnAttributes() {
  posix_spawnattr_init(&attr_);
  sigset_t set;
  sigemptyset(&set);
  posix_spawnattr_setsigmask(&attr_, &set);
  for (int sig = 1; sig < 32; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&set, sig);
  }
  posix_spawnattr_setsigdefault(&attr_, &set);
  posix_spawnattr_setpgroup(&attr_, 0);
  posix_spawnattr_setflags(
      &attr_,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
}

SpawnAttributes::~SpawnAttributes() { posix_spawnattr_destroy(&attr_); }

bool IsResourceShortage(int error) {
  return error == EMFILE || error == ENFILE || error == EAGAIN || error == ENOMEM;
}

bool SpawnProcess(const TaskLaunch& launch, const SpawnAttributes& attributes,
                  const std::string& exec_helper, SpawnedProcess* process, std::string* err,
                  int cgroup_procs_fd) {
  process->error = 0;
  if (launch.argv.empty()) {
    *err = "cannot run a task without argv";
    return false;
  }
  bool helped = HasLimits(launch);
  if (helped && exec_helper.empty()) {
    *err = "cannot enforce the task's limits: chaind has no spawn helper (chaind-exec)";
    return false;
  }
  SpawnFds fds;
  int* error = &process->error;
  if (!OpenSpawnFds(launch, helped, &fds, err, error)) return false;
  FileActions actions;
  int rc = cgroup_procs_fd >= 0 ? 0 : AddFileActions(fds, CurrentDir(launch), &actions);
  if (rc != 0) {
    *error = rc;
    *err = "cannot prepare the spawn: " + ErrnoText(rc);
    return false;
  }
  std::vector<std::string> helper_argv = helped ? HelperArgv(launch, exec_helper) : launch.argv;
  std::vector<char*> argv = CStrings(helper_argv);
  std::vector<char*> envp = CStrings(launch.env);
  pid_t pid = -1;
  bool moved = true;
  rc = cgroup_procs_fd >= 0
           ? CloneSpawn(fds, CurrentDir(launch), cgroup_procs_fd, argv.data(), envp.data(), &pid,
                        &moved)
           : posix_spawn(&pid, argv[0], actions.get(), attributes.get(), argv.data(), envp.data());
  if (rc != 0 && !moved) {
    *error = rc;
    *err = "cannot move the task into its cgroup: " + ErrnoText(rc);
    return false;
  }
  if (rc != 0) {
    *error = rc;
    *err =
        DescribeSpawnError(launch, helped ? "the spawn helper " + exec_helper : launch.argv[0], rc);
    return false;
  }
  int pidfd = OpenPidfd(pid, err, error);
  if (pidfd < 0) return false;
  process->pid = pid;
  process->pidfd = pidfd;
  process->stdin_fd = SpawnFds::Release(&fds.stdin_pipe[1]);
  process->stdout_fd = SpawnFds::Release(&fds.stdout_pipe[0]);
  process->report_fd = SpawnFds::Release(&fds.report_pipe[0]);
  return true;  // ~SpawnFds closes the child's ends
}

std::string ReadSpawnReport(int report_fd) {
  char buffer[4096];
  ssize_t n;
  do {
    n = read(report_fd, buffer, sizeof buffer);
  } while (n < 0 && errno == EINTR);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

void KillGroupAndReap(pid_t pid) {
  kill(-pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace chainctl::daemon
