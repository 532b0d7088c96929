// Registry under load: C concurrent clients each apply N distinct chains to a
// fresh chaind (POST /chains: validation, then an LMDB commit that fsyncs, on
// the thread pool), against a baseline of the same number of GET /health
// calls measured in the same run. Prints p50/p99 latencies, their ratio,
// errors, and the daemon's RSS before and after; exits 1 on any error or if
// a chain is missing afterwards (so the e2e tests can run it too).
//
//   registry_load CHAIND [CLIENTS=100] [CHAINS_PER_CLIENT=20]
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"

using chainctl::cli::HttpCall;
using chainctl::cli::HttpCallError;
using chainctl::cli::HttpClientRequest;
using chainctl::cli::HttpClientResponse;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

long RssKb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// The baseline's request, and the probes'.
const HttpClientRequest kHealth{"GET", "/health", "", ""};

bool Call(const std::string& sock, const HttpClientRequest& request, int expect, double* ms,
          bool quiet = false) {
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  auto start = Clock::now();
  bool ok = HttpCall(sock, request, std::chrono::seconds(60), &response, &error, &err);
  *ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  bool good = ok && response.status == expect;
  if (!good && !quiet) {
    fprintf(stderr, "request failed: %s %d %s\n", err.c_str(), response.status,
            response.body.substr(0, 200).c_str());
  }
  return good;
}

// Runs `clients` threads of `per_client` requests made by `make(client, i)`.
std::vector<double> Load(int clients, int per_client, const std::string& sock, int expect,
                         const std::function<HttpClientRequest(int, int)>& make,
                         std::atomic<int>* errors) {
  std::vector<std::vector<double>> per_thread(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < per_client; ++i) {
        double ms;
        if (!Call(sock, make(c, i), expect, &ms)) ++*errors;
        per_thread[static_cast<size_t>(c)].push_back(ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  return all;
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

// Starts CHAIND on `sock` with its state in `dir` and waits until it answers GET /health (20 s
// at most). False if it could not be spawned or did not answer.
bool StartDaemon(const char* chaind, const std::string& dir, const std::string& sock, pid_t* pid) {
  std::vector<std::string> args = {chaind,         "--socket",    sock,     "--state-dir",
                                   dir + "/state", "--log-level", "warning"};
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  if (posix_spawn(pid, chaind, nullptr, nullptr, cargs.data(), environ) != 0) return false;
  double ms;
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!Call(sock, kHealth, 200, &ms, /*quiet=*/true)) {  // bounded poll until the daemon answers
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// POST /chains of chain "load-C-I": a task "a" and a task "bI" after it.
HttpClientRequest ApplyRequest(int c, int i) {
  std::string id = "load-" + std::to_string(c) + "-" + std::to_string(i);
  nlohmann::json chain = {
      {"chain_id", id},
      {"tasks",
       {{{"task_id", "a"}, {"command", "echo '{}'"}},
        {{"task_id", "b" + std::to_string(i)}, {"command", "cat"}, {"dependencies", {"a"}}}}}};
  return HttpClientRequest{"POST", "/chains", "application/json", chain.dump()};
}

// The applies' latencies (sorted), and the GET /health probes made back to back meanwhile.
struct ApplyFigures {
  std::vector<double> applies;
  std::vector<double> probes;  // sorted
  double seconds = 0;          // the applies' wall time
};

// The applies of `clients` x `per_client` chains while one more client probes GET /health back
// to back: its latency shows whether commits ever stall the event loop.
ApplyFigures ApplyWhileProbing(int clients, int per_client, const std::string& sock,
                               std::atomic<int>* errors) {
  ApplyFigures out;
  std::atomic<bool> loading{true};
  std::thread prober([&] {
    while (loading) {
      double probe_ms;
      if (!Call(sock, kHealth, 200, &probe_ms)) ++*errors;
      out.probes.push_back(probe_ms);
    }
  });
  auto start = Clock::now();
  out.applies = Load(clients, per_client, sock, 201, ApplyRequest, errors);
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  loading = false;
  prober.join();
  std::sort(out.probes.begin(), out.probes.end());
  return out;
}

// The number of chains GET /chains lists; 0 if the call fails.
size_t StoredChains(const std::string& sock) {
  HttpClientResponse list;
  HttpCallError error;
  std::string err;
  if (!HttpCall(sock, {"GET", "/chains", "", ""}, std::chrono::seconds(60), &list, &error, &err)) {
    return 0;
  }
  return nlohmann::json::parse(list.body)["chains"].size();
}

// Stops the daemon (SIGTERM), waits for it and removes `dir`; returns its wait status.
int StopDaemon(pid_t pid, const std::string& dir) {
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  std::string rm = "rm -rf " + dir;
  if (system(rm.c_str()) != 0) fprintf(stderr, "could not remove %s\n", dir.c_str());
  return status;
}

// The latencies: of the applies (`expected` of them), of the baseline, of the probes.
void PrintLatencies(int clients, int per_client, size_t expected,
                    const std::vector<double>& baseline, const ApplyFigures& f) {
  printf("registry load: %d clients x %d chains = %zu applies in %.2f s (%.0f/s)\n", clients,
         per_client, expected, f.seconds, static_cast<double>(expected) / f.seconds);
  printf("  POST /chains   p50 %.2f ms   p99 %.2f ms\n", Percentile(f.applies, 0.5),
         Percentile(f.applies, 0.99));
  printf("  GET /health    p50 %.2f ms   p99 %.2f ms   (baseline, same run)\n",
         Percentile(baseline, 0.5), Percentile(baseline, 0.99));
  printf(
      "  GET /health during the applies (loop responsiveness): p50 %.2f ms   p99 %.2f ms   "
      "max %.2f ms (%zu probes)\n",
      Percentile(f.probes, 0.5), Percentile(f.probes, 0.99), f.probes.empty() ? 0 : f.probes.back(),
      f.probes.size());
  printf("  ratio apply/health: p50 %.1fx   p99 %.1fx\n",
         Percentile(f.applies, 0.5) / Percentile(baseline, 0.5),
         Percentile(f.applies, 0.99) / Percentile(baseline, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: registry_load CHAIND [CLIENTS] [CHAINS_PER_CLIENT]\n");
    return 2;
  }
  const int clients = argc > 2 ? std::atoi(argv[2]) : 100;
  const int per_client = argc > 3 ? std::atoi(argv[3]) : 20;
  char dir_template[] = "/tmp/chainctl-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::string sock = dir + "/chaind.sock";
  pid_t pid;
  if (!StartDaemon(argv[1], dir, sock, &pid)) return 1;
  long rss_before = RssKb(pid);
  std::atomic<int> errors{0};

  auto baseline = Load(
      clients, per_client, sock, 200, [](int, int) { return kHealth; }, &errors);
  ApplyFigures applies = ApplyWhileProbing(clients, per_client, sock, &errors);
  long rss_after = RssKb(pid);
  size_t stored = StoredChains(sock);
  int status = StopDaemon(pid, dir);

  const size_t expected = static_cast<size_t>(clients) * static_cast<size_t>(per_client);
  PrintLatencies(clients, per_client, expected, baseline, applies);
  printf("  daemon RSS: %ld KiB before, %ld KiB after; errors %d; stored %zu of %zu\n", rss_before,
         rss_after, errors.load(), stored, expected);
  bool ok = errors == 0 && stored == expected && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) printf("FAILED\n");
  return ok ? 0 : 1;
}
