// The predictor's endpoints (DESIGN.md §6): GET /predictions, GET /model, POST /model/train.
// Routing is in api.cc; the model is the PredictionService's (prediction_service.h).
#include <algorithm>
#include <sstream>

#include "daemon/api/api.h"
#include "daemon/api/internal.h"
#include "daemon/prefetch/prediction_service.h"

namespace chainctl::daemon {

using internal::BadParam;
using internal::Json;
using internal::NumberParam;
using nlohmann::json;

namespace {

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

json Optional(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// The chains likely to be triggered next, the first `limit` of them.
json ChainsJson(const Predictor& model, uint64_t limit) {
  json chains = json::array();
  for (const ChainCandidate& c : model.PredictChains()) {
    if (chains.size() >= limit) break;
    chains.push_back({{"chain_id", c.chain_id},
                      {"probability", c.probability},
                      {"expected_in_ms", Optional(c.expected_in_ms)}});
  }
  return chains;
}

// The one chain whose history has run `task`, in *chain; else the error to answer (404 if none
// has, 400 if several have).
std::optional<HttpResponse> ChainOfTask(const Predictor& model, const std::string& task,
                                        std::string* chain) {
  std::vector<std::string> chains = model.ChainsWithTask(task);
  if (chains.empty()) {
    return JsonError(
        404, "unknown_task",
        "no chain in the history has run task " + task + "; name the chain with chain=");
  }
  if (chains.size() > 1) {
    std::string names;
    for (const std::string& c : chains) names += (names.empty() ? "" : ", ") + c;
    return JsonError(
        400, "ambiguous_task",
        "task " + task + " runs in several chains (" + names + "); name one with chain=",
        {{"chains", chains}});
  }
  *chain = chains[0];
  return std::nullopt;
}

// The first `limit` of `candidates` for the next task of a run of `chain` that has started
// `after`, each with its timing.
json CandidatesJson(const Predictor& model, const std::string& chain,
                    const std::vector<std::string>& after,
                    const std::vector<TaskCandidate>& candidates, uint64_t limit) {
  json list = json::array();
  for (const TaskCandidate& c : candidates) {
    if (list.size() >= limit) break;
    json item = {{"task_id", c.task_id},
                 {"probability", c.probability},
                 {"expected_in_ms", Optional(c.expected_in_ms)},
                 {"expected_in_p90_ms", Optional(c.expected_in_p90_ms)}};
    // Not seen right after the last task: needed when the last task ends, at the earliest.
    if (!c.expected_in_ms && !after.empty()) {
      json timing = model.TaskTiming(chain, after.back());
      if (!timing.is_null() && !timing["duration_ms"].is_null()) {
        item["expected_in_ms"] = timing["duration_ms"]["p50"];
        item["expected_in_p90_ms"] = timing["duration_ms"]["p90"];
      }
    }
    item["timing"] = model.TaskTiming(chain, c.task_id);
    list.push_back(std::move(item));
  }
  return list;
}

}  // namespace

// GET /predictions?after=T1,T2,...&chain=C&limit=N: the candidates for the next task of a run of
// C that has started T1, T2, ... (oldest first; the last is the one just started). Without
// chain, the one chain whose history has the last task. Without after: the run's first task
// (with chain), or the chains likely to be triggered next (without).
void Api::GetPredictions(const std::string& query, Responder respond) {
  PredictionService* service = context_.predictions;
  std::optional<uint64_t> limit = NumberParam(query, "limit", 10);
  if (!limit || *limit == 0) return respond(BadParam("limit"));
  std::vector<std::string> after = SplitList(QueryParam(query, "after"));
  std::string chain = QueryParam(query, "chain");
  const Predictor& model = service->model();
  json body = {{"model_version", service->model_version()}};

  if (after.empty() && chain.empty()) {
    body["chains"] = ChainsJson(model, *limit);
    return respond(Json(200, body));
  }
  if (chain.empty()) {
    std::optional<HttpResponse> error = ChainOfTask(model, after.back(), &chain);
    if (error) return respond(std::move(*error));
  }
  std::optional<ChainShape> shape = service->ShapeOf(chain);
  if (!shape && !model.KnowsChain(chain)) {
    return respond(
        JsonError(404, "not_found", "no chain " + chain + " in the registry or history"));
  }
  std::vector<TaskCandidate> candidates =
      model.PredictTasks(chain, after, shape ? &*shape : nullptr);
  body["chain_id"] = chain;
  body["after"] = after;
  body["from_definition"] = shape.has_value();
  body["candidates"] = CandidatesJson(model, chain, after, candidates, *limit);
  respond(Json(200, body));
}

void Api::GetModel(Responder respond) { respond(Json(200, context_.predictions->Status())); }

// POST /model/train: trains now and answers when the new model is in use.
void Api::TrainModel(Responder respond) {
  context_.predictions->Train([respond](const TrainResult& r) {
    if (!r.ok) return respond(JsonError(500, "training_failed", "training failed: " + r.error));
    respond(Json(200, {{"version", r.version},
                       {"records", r.records},
                       {"through_seq", r.through_seq},
                       {"seconds", r.seconds}}));
  });
}

}  // namespace chainctl::daemon
