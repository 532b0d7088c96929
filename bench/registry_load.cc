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
  std::vector<std::string> args = {argv[1],        "--socket",    sock,     "--state-dir",
                                   dir + "/state", "--log-level", "warning"};
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[1], nullptr, nullptr, cargs.data(), environ) != 0) return 1;
  double ms;
  HttpClientRequest health{"GET", "/health", "", ""};
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!Call(sock, health, 200, &ms, /*quiet=*/true)) {  // bounded poll until the daemon answers
    if (Clock::now() > deadline) return 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  long rss_before = RssKb(pid);
  std::atomic<int> errors{0};

  auto baseline = Load(
      clients, per_client, sock, 200,
      [](int, int) {
        return HttpClientRequest{"GET", "/health", "", ""};
      },
      &errors);
  // While the applies run, one more client probes GET /health back to back:
  // its latency shows whether commits ever stall the event loop.
  std::atomic<bool> loading{true};
  std::vector<double> probes;
  std::thread prober([&] {
    while (loading) {
      double probe_ms;
      if (!Call(sock, health, 200, &probe_ms)) ++errors;
      probes.push_back(probe_ms);
    }
  });
  auto start = Clock::now();
  auto applies = Load(
      clients, per_client, sock, 201,
      [](int c, int i) {
        std::string id = "load-" + std::to_string(c) + "-" + std::to_string(i);
        nlohmann::json chain = {{"chain_id", id},
                                {"tasks",
                                 {{{"task_id", "a"}, {"command", "echo '{}'"}},
                                  {{"task_id", "b" + std::to_string(i)},
                                   {"command", "cat"},
                                   {"dependencies", {"a"}}}}}};
        return HttpClientRequest{"POST", "/chains", "application/json", chain.dump()};
      },
      &errors);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  loading = false;
  prober.join();
  std::sort(probes.begin(), probes.end());
  long rss_after = RssKb(pid);

  HttpClientResponse list;
  HttpCallError error;
  std::string err;
  size_t stored = 0;
  if (HttpCall(sock, {"GET", "/chains", "", ""}, std::chrono::seconds(60), &list, &error, &err)) {
    stored = nlohmann::json::parse(list.body)["chains"].size();
  }
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  std::string rm = "rm -rf " + dir;
  if (system(rm.c_str()) != 0) fprintf(stderr, "could not remove %s\n", dir.c_str());

  const size_t expected = static_cast<size_t>(clients) * static_cast<size_t>(per_client);
  printf("registry load: %d clients x %d chains = %zu applies in %.2f s (%.0f/s)\n", clients,
         per_client, expected, seconds, static_cast<double>(expected) / seconds);
  printf("  POST /chains   p50 %.2f ms   p99 %.2f ms\n", Percentile(applies, 0.5),
         Percentile(applies, 0.99));
  printf("  GET /health    p50 %.2f ms   p99 %.2f ms   (baseline, same run)\n",
         Percentile(baseline, 0.5), Percentile(baseline, 0.99));
  printf(
      "  GET /health during the applies (loop responsiveness): p50 %.2f ms   p99 %.2f ms   "
      "max %.2f ms (%zu probes)\n",
      Percentile(probes, 0.5), Percentile(probes, 0.99), probes.empty() ? 0 : probes.back(),
      probes.size());
  printf("  ratio apply/health: p50 %.1fx   p99 %.1fx\n",
         Percentile(applies, 0.5) / Percentile(baseline, 0.5),
         Percentile(applies, 0.99) / Percentile(baseline, 0.99));
  printf("  daemon RSS: %ld KiB before, %ld KiB after; errors %d; stored %zu of %zu\n", rss_before,
         rss_after, errors.load(), stored, expected);
  bool ok = errors == 0 && stored == expected && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) printf("FAILED\n");
  return ok ? 0 : 1;
}
