// chaind-exec: chaind's spawn helper (DESIGN.md §4 "Spawning", "Resources"). chaind starts it
// with posix_spawn instead of a task that has limits; it sets the limits on itself and execs
// the task, so they are in force before the task's first instruction (prlimit(2) after the
// spawn would leave a window in which the task runs unlimited). Tasks without limits are
// spawned directly.
//
//   chaind-exec [--data=BYTES] [--cpu=SECONDS] [--report-fd=N] -- PROGRAM [ARG...]
//
//   --data=BYTES    RLIMIT_DATA, soft and hard: heap and private writable mappings (Linux 4.7
//                   and later); allocations beyond it fail
//   --cpu=SECONDS   RLIMIT_CPU: SIGXCPU at SECONDS of CPU time, SIGKILL kCpuHardExtraS later
//   --report-fd=N   descriptor made close-on-exec; if the task cannot be run, the error is
//                   written there too, so that chaind reports it as a failed spawn
// A limit above the hard limit chaind itself runs under is lowered to it (raising it would
// need privileges). PROGRAM is run with the arguments after "--" as its argv (argv[0] is
// PROGRAM) and the environment as is. If it cannot be run: "chaind-exec: cannot run PROGRAM:
// why" on stderr, and exit status 127. Bad usage: a message and exit status 127 as well.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

extern char** environ;

namespace {

constexpr int kExitCannotRun = 127;   // as a shell reports a command it cannot run
constexpr rlim_t kCpuHardExtraS = 2;  // between SIGXCPU and SIGKILL: time to handle SIGXCPU

int report_fd = -1;

void WriteAll(int fd, std::initializer_list<const char*> parts) {
  for (const char* part : parts) (void)!write(fd, part, std::strlen(part));
}

// No allocation here: it may run under a memory limit already set.
[[noreturn]] void Fail(std::initializer_list<const char*> message) {
  WriteAll(STDERR_FILENO, {"chaind-exec: "});
  WriteAll(STDERR_FILENO, message);
  WriteAll(STDERR_FILENO, {"\n"});
  if (report_fd >= 0) WriteAll(report_fd, message);
  _exit(kExitCannotRun);
}

// The value of "--NAME=VALUE" if `arg` is that flag, else nullptr.
const char* FlagValue(const char* arg, const char* name) {
  size_t n = std::strlen(name);
  return std::strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : nullptr;
}

uint64_t Number(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    Fail({"invalid ", flag, " value \"", text, "\""});
  }
  return value;
}

// Sets `resource` to `soft`/`hard`, each lowered to the current hard limit.
void Limit(int resource, const char* name, rlim_t soft, rlim_t hard) {
  rlimit current{};
  if (getrlimit(resource, &current) != 0) Fail({"getrlimit ", name, ": ", strerror(errno)});
  if (current.rlim_max != RLIM_INFINITY) {
    if (soft > current.rlim_max) soft = current.rlim_max;
    if (hard > current.rlim_max) hard = current.rlim_max;
  }
  rlimit wanted{soft, hard};
  if (setrlimit(resource, &wanted) != 0) Fail({"setrlimit ", name, ": ", strerror(errno)});
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t data = 0, cpu = 0;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    if (const char* bytes = FlagValue(argv[i], "--data")) {
      data = Number("--data", bytes);
    } else if (const char* seconds = FlagValue(argv[i], "--cpu")) {
      cpu = Number("--cpu", seconds);
    } else if (const char* fd = FlagValue(argv[i], "--report-fd")) {
      report_fd = static_cast<int>(Number("--report-fd", fd));
      if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) != 0) report_fd = -1;
    } else {
      Fail({"unknown argument \"", argv[i],
            "\"; usage: chaind-exec [--data=BYTES] [--cpu=SECONDS] [--report-fd=N] -- PROGRAM "
            "[ARG...]"});
    }
  }
  if (i + 1 >= argc) Fail({"no program after \"--\""});
  if (data > 0) Limit(RLIMIT_DATA, "RLIMIT_DATA", data, data);
  if (cpu > 0) Limit(RLIMIT_CPU, "RLIMIT_CPU", cpu, cpu + kCpuHardExtraS);
  char** task = argv + i + 1;
  execve(task[0], task, environ);
  Fail({"cannot run ", task[0], ": ", strerror(errno)});
}
