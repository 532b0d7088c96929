// The HTTP API of chaind (DESIGN.md §6): routes requests to the registry, the orchestrator
// and the history, and answers in JSON. Runs on the loop thread; writes to the store go to the
// thread pool (daemon/util/work_queue.h).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "daemon/http/types.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/run/orchestrator.h"
#include "daemon/store/history.h"
#include "daemon/store/registry.h"

namespace chainctl::daemon {

class InputStager;
class TaskCache;

struct ApiContext {
  uv_loop_t* loop = nullptr;
  Registry* registry = nullptr;  // not owned; these outlive the Api
  Orchestrator* orchestrator = nullptr;
  History* history = nullptr;
  PredictionService* predictions = nullptr;
  Prefetcher* prefetcher = nullptr;
  WorkerPool* workers = nullptr;    // may be null
  InputStager* stager = nullptr;    // may be null
  TaskCache* task_cache = nullptr;  // null: chaind runs without a task cache (/cache answers 503)
  // Its degraded state (a commit failed, retried) is shown by /health and refuses chain
  // writes and history imports with 507; may be null (never degraded).
  const StoreWriter* writer = nullptr;
  std::string socket_path;
  std::string state_dir;
  // /health's "task_cgroups": {"dir"} where tasks run in cgroups (task_cgroups.h), else
  // {"dir": null, "why_not"}.
  nlohmann::json task_cgroups = nlohmann::json::object();
  int store_format = 0;
  int64_t started_unix_ms = 0;
  // Called on the loop thread after records were imported (POST /history), with them as
  // stored (seq set), in order; not for the orchestrator's own records, nor for an import of
  // no records. Null: nobody is told. (The predictor learns from imports through it.)
  std::function<void(const std::vector<HistoryRecord>&)> on_history_appended;
};

class Api {
 public:
  explicit Api(ApiContext context) : context_(std::move(context)) {}

  // The Handler of the HTTP server.
  void Handle(HttpRequest request, Responder respond);

 private:
  void HandleRuns(const HttpRequest& request, const std::vector<std::string>& segments,
                  Responder respond);
  void PostChain(const HttpRequest& request, Responder respond);
  void GetChain(const std::string& id, const std::string& query, Responder respond);
  void ListChains(Responder respond);
  void DeleteChain(const std::string& id, Responder respond);
  void GetTask(const std::string& id, Responder respond);
  void ListTasks(Responder respond);
  void Health(Responder respond);
  // api_model.cc
  void GetPredictions(const std::string& query, Responder respond);
  void GetModel(Responder respond);
  void GetPrefetch(Responder respond);
  void GetStats(Responder respond);
  void GetMetrics(Responder respond);
  nlohmann::json StatsJson() const;
  void TrainModel(Responder respond);
  // api_runs.cc
  void Trigger(const std::string& chain_id, const HttpRequest& request, Responder respond);
  void ListRuns(const std::string& query, Responder respond);
  void GetRun(const std::string& id, Responder respond);
  void Events(const std::string& id, const std::string& query, Responder respond);
  void TaskLog(const std::string& id, const std::string& task, const std::string& query,
               Responder respond);
  void TaskOutput(const std::string& id, const std::string& task, Responder respond);
  void CancelRun(const std::string& id, Responder respond);
  void ResumeRun(const std::string& id, const HttpRequest& request, Responder respond);
  // api_history.cc
  void GetHistory(const std::string& query, Responder respond);
  // Imports the body, history JSONL v1: all its records in one transaction, or none.
  void PostHistory(HttpRequest request, Responder respond);
  void Version(Responder respond);
  // cache_routes.cc: GET /cache, POST /cache/prune, DELETE /cache.
  void HandleCache(const HttpRequest& request, const std::vector<std::string>& segments,
                   Responder respond);
  void PruneCache(const HttpRequest& request, Responder respond);

  ApiContext context_;
};

// The value of `name` in a query string "a=1&b=2", percent-decoded; "" if absent.
std::string QueryParam(std::string_view query, std::string_view name);

}  // namespace chainctl::daemon
