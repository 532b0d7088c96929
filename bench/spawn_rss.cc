// Spawn cost against the daemon's size (DESIGN.md §4 "Spawning"): SPAWNS sequential /bin/true
// through ProcessRunner (daemon/exec/process_runner.h), through a raw posix_spawn + waitpid loop
// and through fork + exec + waitpid, with this process at ~20 MB RSS and again after touching
// ~480 MB more (4 KiB pages, like a heap of small objects). Each figure is the best of ROUNDS
// runs; the ratios printed are measured in this run. Exits 1 if a spawn fails.
//
//   spawn_rss [SPAWNS=1000] [ROUNDS=3]
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "daemon/exec/process_runner.h"

using chainctl::daemon::ProcessRunner;
using chainctl::daemon::TaskLaunch;
using chainctl::daemon::TaskResult;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

constexpr const char* kTrue = "/bin/true";
char* const kArgv[] = {const_cast<char*>(kTrue), nullptr};

long RssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Allocates and touches `bytes` that stay until the process ends.
void GrowRss(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  madvise(p, bytes, MADV_NOHUGEPAGE);
  memset(p, 1, bytes);
}

double MicrosPerSpawn(Clock::time_point start, int spawns) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / spawns;
}

bool Reap(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double RawPosixSpawn(int spawns, bool* ok) {
  auto start = Clock::now();
  for (int i = 0; i < spawns; ++i) {
    pid_t pid = -1;
    *ok &= posix_spawn(&pid, kTrue, nullptr, nullptr, kArgv, environ) == 0 && Reap(pid);
  }
  return MicrosPerSpawn(start, spawns);
}

double ForkExec(int spawns, bool* ok) {
  auto start = Clock::now();
  for (int i = 0; i < spawns; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      execve(kTrue, kArgv, environ);
      _exit(127);
    }
    *ok &= pid > 0 && Reap(pid);
  }
  return MicrosPerSpawn(start, spawns);
}

// One attempt after the other, each started from the previous one's `done`.
double Runner(int spawns, bool* ok) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  TaskLaunch launch;
  launch.argv = {kTrue};
  for (char** e = environ; *e; ++e) launch.env.emplace_back(*e);
  auto start = Clock::now();
  {
    ProcessRunner runner(&loop);
    int left = spawns;
    ProcessRunner::Done done = [&](TaskResult result) {
      *ok &= result.ok();
      if (--left > 0) runner.Start(launch, done);
    };
    runner.Start(launch, done);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  double micros = MicrosPerSpawn(start, spawns);
  uv_run(&loop, UV_RUN_DEFAULT);
  *ok &= uv_loop_close(&loop) == 0;
  return micros;
}

struct Row {
  const char* name;
  double (*run)(int spawns, bool* ok);
  double micros[2];  // at ~20 MB, at ~500 MB
};

// Best of `rounds`, the three ways taking turns so that noise hits them alike.
void Measure(std::vector<Row>* rows, int size, int spawns, int rounds, bool* ok) {
  for (Row& row : *rows) row.micros[size] = 1e300;
  for (int r = 0; r < rounds; ++r) {
    for (Row& row : *rows) row.micros[size] = std::min(row.micros[size], row.run(spawns, ok));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int spawns = argc > 1 ? atoi(argv[1]) : 1000;
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  if (spawns <= 0 || rounds <= 0) {
    fprintf(stderr, "usage: spawn_rss [SPAWNS=1000] [ROUNDS=3]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // ProcessRunner's contract
  std::vector<Row> rows = {{"ProcessRunner", Runner, {}},
                           {"posix_spawn+waitpid", RawPosixSpawn, {}},
                           {"fork+exec+waitpid", ForkExec, {}}};
  bool ok = true;
  long rss[2];
  constexpr long kSmallKb = 20 * 1024;
  if (RssKb() < kSmallKb) GrowRss(static_cast<size_t>(kSmallKb - RssKb()) * 1024);
  rss[0] = RssKb();
  Measure(&rows, 0, spawns, rounds, &ok);
  GrowRss(size_t{480} << 20);
  rss[1] = RssKb();
  Measure(&rows, 1, spawns, rounds, &ok);

  printf("spawn_rss: %d sequential %s per figure, best of %d, microseconds per spawn\n", spawns,
         kTrue, rounds);
  printf("  %-22s %8ld MiB RSS %8ld MiB RSS %10s\n", "", rss[0] / 1024, rss[1] / 1024, "big/small");
  for (const Row& row : rows) {
    printf("  %-22s %16.1f %16.1f %9.2fx\n", row.name, row.micros[0], row.micros[1],
           row.micros[1] / row.micros[0]);
  }
  printf("  ratios, same run:\n");
  printf("    ProcessRunner@%ldMiB / ProcessRunner@%ldMiB  %.2fx\n", rss[1] / 1024, rss[0] / 1024,
         rows[0].micros[1] / rows[0].micros[0]);
  printf("    fork@%ldMiB / fork@%ldMiB                    %.2fx\n", rss[1] / 1024, rss[0] / 1024,
         rows[2].micros[1] / rows[2].micros[0]);
  printf(
      "    ProcessRunner / raw posix_spawn           %.2fx at %ld MiB, %.2fx at %ld MiB"
      " (goal <= 1.25x)\n",
      rows[0].micros[0] / rows[1].micros[0], rss[0] / 1024, rows[0].micros[1] / rows[1].micros[1],
      rss[1] / 1024);
  if (!ok) printf("FAILED: a spawn did not run /bin/true successfully\n");
  return ok ? 0 : 1;
}
