// The task cache's endpoints (DESIGN.md §4 "Cache", §6): GET /cache (its figures), POST
// /cache/prune (to its budget, or to {"max_bytes": N}) and DELETE /cache (every entry). Each
// scans the cache folder, so it runs on the thread pool. Routing is in api.cc.
#include <functional>
#include <memory>
#include <utility>

#include "common/json_text.h"
#include "daemon/api/api.h"
#include "daemon/api/internal.h"
#include "daemon/store/task_cache.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

using internal::Json;
using internal::MethodNotAllowed;
using nlohmann::json;

// Runs `work` on the thread pool, then answers 200 with what it gave.
void AnswerFromPool(uv_loop_t* loop, std::function<json()> work, Responder respond) {
  auto result = std::make_shared<json>();
  QueueWork(
      loop, [result, work = std::move(work)] { *result = work(); },
      [result, respond = std::move(respond)] { respond(Json(200, *result)); });
}

// What Prune and Clear answer: {"removed": entries, "bytes_removed"}.
json Removed(uint64_t entries, uint64_t bytes) {
  return {{"removed", entries}, {"bytes_removed", bytes}};
}

// The budget a POST /cache/prune body asks for: {"max_bytes": N}, or the cache's own for an
// empty body or one without it. nullopt with the 400 in *bad.
std::optional<uint64_t> PruneTarget(const std::string& text, uint64_t budget, HttpResponse* bad) {
  json body = json::object();
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (!text.empty() && (!DecodeJsonText(text, &body, &fault, &why) || !body.is_object())) {
    *bad = JsonError(400, "malformed_request",
                     "the body must be a JSON object such as {\"max_bytes\": 1000000000}" +
                         (why.empty() ? std::string() : ": " + why));
    return std::nullopt;
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "max_bytes") {
      *bad = JsonError(400, "unknown_field", "unknown field \"" + key + "\"; known: max_bytes");
      return std::nullopt;
    }
    if (!value.is_number_unsigned()) {
      *bad = JsonError(400, "bad_max_bytes", "max_bytes must be a whole number of bytes");
      return std::nullopt;
    }
    budget = value.get<uint64_t>();
  }
  return budget;
}

}  // namespace

void Api::HandleCache(const HttpRequest& request, const std::vector<std::string>& s,
                      Responder respond) {
  const std::string& m = request.method;
  bool root = s.size() == 1, prune = s.size() == 2 && s[1] == "prune";
  if (!root && !prune) {
    return respond(JsonError(404, "not_found", "no such endpoint: " + m + " " + request.path));
  }
  if (root && m != "GET" && m != "DELETE") return respond(MethodNotAllowed(m, "GET, DELETE"));
  if (prune && m != "POST") return respond(MethodNotAllowed(m, "POST"));
  TaskCache* cache = context_.task_cache;
  if (!cache) {
    return respond(JsonError(503, "no_cache",
                             "chaind runs without a task cache: its folder could not be used "
                             "(chaind's log says why; --cache-dir)"));
  }
  if (prune) return PruneCache(request, std::move(respond));
  if (m == "GET") {
    return AnswerFromPool(
        context_.loop,
        [cache] {
          TaskCache::Stats stats = cache->Scan();
          return json{{"dir", stats.dir},
                      {"entries", stats.entries},
                      {"bytes", stats.bytes},
                      {"max_bytes", stats.max_bytes}};
        },
        std::move(respond));
  }
  AnswerFromPool(
      context_.loop,
      [cache] {
        uint64_t bytes = 0;
        uint64_t removed = cache->Clear(&bytes);
        return Removed(removed, bytes);
      },
      std::move(respond));
}

void Api::PruneCache(const HttpRequest& request, Responder respond) {
  TaskCache* cache = context_.task_cache;
  HttpResponse bad;
  std::optional<uint64_t> max_bytes = PruneTarget(request.body, cache->max_bytes(), &bad);
  if (!max_bytes) return respond(std::move(bad));
  AnswerFromPool(
      context_.loop,
      [cache, max = *max_bytes] {
        uint64_t bytes = 0;
        uint64_t removed = cache->Prune(max, &bytes);
        return Removed(removed, bytes);
      },
      std::move(respond));
}

}  // namespace chainctl::daemon
