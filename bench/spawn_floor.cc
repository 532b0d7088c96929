// The floor for dispatching tasks: N runs of a program with posix_spawn, at most P at once,
// each waited for with waitpid. Nothing else: no pipes, no files, no bookkeeping.
//   spawn_floor N P PROGRAM   → prints the seconds it took
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

extern char** environ;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: spawn_floor N P PROGRAM\n");
    return 2;
  }
  long n = std::atol(argv[1]), p = std::atol(argv[2]);
  char* child_argv[] = {argv[3], nullptr};
  auto start = std::chrono::steady_clock::now();
  long started = 0, running = 0;
  while (started < n || running > 0) {
    while (started < n && running < p) {
      pid_t pid;
      if (posix_spawn(&pid, argv[3], nullptr, nullptr, child_argv, environ) != 0) {
        std::perror("posix_spawn");
        return 1;
      }
      ++started;
      ++running;
    }
    int status;
    if (waitpid(-1, &status, 0) > 0) --running;
  }
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%.6f\n", took.count());
  return 0;
}
