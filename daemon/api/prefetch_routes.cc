// The prefetcher's endpoints (DESIGN.md §5 "Measured", §6): GET /prefetch (queue, warm pool,
// figures by task), GET /stats (the daemon's figures as JSON) and GET /metrics (the same in the
// Prometheus text format 0.0.4). Routing is in api.cc.
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "daemon/api/api.h"
#include "daemon/api/internal.h"
#include "daemon/exec/worker_pool.h"
#include "daemon/prefetch/input_stager.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"

namespace chainctl::daemon {

using internal::Json;
using nlohmann::json;

namespace {

// chaind's own cost: CPU seconds (user + system) and resident memory now and at its peak.
json ProcessFigures() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  uint64_t rss = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return {{"cpu_seconds", cpu},
          {"rss_bytes", rss},
          {"max_rss_bytes", static_cast<uint64_t>(usage.ru_maxrss) * 1024}};
}

}  // namespace

void Api::GetPrefetch(Responder respond) { respond(Json(200, context_.prefetcher->Status())); }

json Api::StatsJson() const {
  json stats = {{"uptime_s", (RealUnixMs() - context_.started_unix_ms) / 1000},
                {"daemon", ProcessFigures()},
                {"runs",
                 {{"active", context_.orchestrator->active_runs()},
                  {"running_tasks", context_.orchestrator->running_tasks()}}},
                {"prefetch", context_.prefetcher->Stats()},
                {"model",
                 {{"version", context_.predictions->model_version()},
                  {"observations", context_.predictions->model().observations()}}}};
  if (context_.workers) stats["workers"] = context_.workers->Stats();
  if (context_.stager) stats["input_cache"] = context_.stager->Stats();
  return stats;
}

void Api::GetStats(Responder respond) { respond(Json(200, StatsJson())); }

void Api::GetMetrics(Responder respond) {
  json s = StatsJson();
  std::ostringstream out;
  auto gauge = [&out](const char* name, const char* type, const char* help, const json& value) {
    out << "# HELP chaind_" << name << " " << help << "\n# TYPE chaind_" << name << " " << type
        << "\nchaind_" << name << " " << (value.is_number() ? value : json(0)).dump() << "\n";
  };
  gauge("cpu_seconds_total", "counter", "CPU time of chaind itself.", s["daemon"]["cpu_seconds"]);
  gauge("resident_memory_bytes", "gauge", "Resident memory of chaind.", s["daemon"]["rss_bytes"]);
  gauge("active_runs", "gauge", "Runs not yet ended.", s["runs"]["active"]);
  gauge("running_tasks", "gauge", "Task attempts running.", s["runs"]["running_tasks"]);
  gauge("model_observations", "gauge", "Task starts the model has learned.",
        s["model"]["observations"]);
  out << context_.prefetcher->Metrics();
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = out.str();
  respond(std::move(response));
}

}  // namespace chainctl::daemon
