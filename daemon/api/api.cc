#include "daemon/api/api.h"

#include <unistd.h>

#include <charconv>
#include <memory>

#include "common/chain/load.h"
#include "common/json_pointer.h"
#include "common/json_text.h"
#include "common/version.h"
#include "common/yaml_util.h"
#include "daemon/api/internal.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

using internal::Json;
using internal::MethodNotAllowed;
using internal::RefuseWhileDegraded;
using internal::StoreError;

json UsedBy(const TaskVersion& t) {
  json out = json::array();
  for (const auto& [chain_id, version] : t.used_by) {
    out.push_back({{"chain_id", chain_id}, {"version", version}});
  }
  return out;
}

json ChainSummary(const ChainVersion& c) {
  return {{"chain_id", c.chain_id},
          {"version", c.version},
          {"content_hash", c.content_hash},
          {"created_unix_ms", c.created_unix_ms},
          {"tasks", c.definition.value("tasks", json::array()).size()}};
}

json TaskJson(const TaskVersion& t) {
  return {{"task_id", t.task_id},           {"version", t.version},
          {"content_hash", t.content_hash}, {"created_unix_ms", t.created_unix_ms},
          {"definition", t.definition},     {"used_by", UsedBy(t)}};
}

// Splits "/chains/etl" into {"chains", "etl"}, percent-decoding each segment.
bool SplitPath(const std::string& path, std::vector<std::string>* segments) {
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string segment;
    if (!PercentDecode(std::string_view(path).substr(start, slash - start), &segment)) {
      return false;
    }
    if (!segment.empty()) segments->push_back(std::move(segment));
    start = slash + 1;
  }
  return true;
}

// The chain format named by a Content-Type, or nullopt for an unsupported one.
std::optional<SourceFormat> FormatOfContentType(const std::string* content_type) {
  if (!content_type) return SourceFormat::kAuto;
  std::string type = content_type->substr(0, content_type->find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  if (type == "application/json") return SourceFormat::kJson;
  if (type == "application/yaml" || type == "application/x-yaml" || type == "text/yaml" ||
      type == "text/x-yaml") {
    return SourceFormat::kYaml;
  }
  return std::nullopt;
}

// /health's "resources": {"capacity": {"cpu" (cores), "memory_bytes", "gpus": [ids]},
// "in_use": {"cpu", "memory_bytes", "gpus" (a count)}}; unlimited cpu or memory is left out.
json ResourcesJson(const Resources& resources) {
  const Capacity& c = resources.capacity();
  json capacity = {{"gpus", c.gpus}};
  if (c.cpu_millis != Capacity::kUnlimitedCpu) {
    capacity["cpu"] = static_cast<double>(c.cpu_millis) / 1000;
  }
  if (c.memory_bytes != Capacity::kUnlimitedMemory) capacity["memory_bytes"] = c.memory_bytes;
  json in_use = {{"cpu", static_cast<double>(resources.cpu_millis_used()) / 1000},
                 {"memory_bytes", resources.memory_bytes_used()},
                 {"gpus", c.gpus.size() - resources.gpus_free()}};
  return {{"capacity", std::move(capacity)}, {"in_use", std::move(in_use)}};
}

// /health's "store": {"ok"} and, while degraded, why and since when.
json StoreHealth(const StoreWriter* writer) {
  if (!writer || !writer->degraded()) return {{"ok", true}};
  return {{"ok", false},
          {"error", writer->failure()},
          {"failing_since_unix_ms", writer->failing_since_ms()},
          {"unstored_writes", writer->unstored()},
          {"message", writer->DegradedMessage()}};
}

}  // namespace

namespace internal {

HttpResponse Json(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = DumpJson(body);
  return r;
}

HttpResponse StoreError(const std::string& err) {
  return JsonError(500, "store_error", "the store failed: " + err);
}

std::optional<uint64_t> NumberParam(std::string_view query, std::string_view name,
                                    uint64_t fallback) {
  std::string text = QueryParam(query, name);
  if (text.empty()) return fallback;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

HttpResponse MethodNotAllowed(const std::string& method, const std::string& allowed) {
  HttpResponse r =
      JsonError(405, "method_not_allowed", method + " is not allowed here; allowed: " + allowed);
  r.headers.emplace_back("Allow", allowed);
  return r;
}

HttpResponse BadParam(std::string_view name) {
  return JsonError(400, "bad_parameter", std::string(name) + " must be a whole number");
}

std::optional<HttpResponse> RefuseWhileDegraded(const StoreWriter* writer) {
  if (!writer || !writer->degraded()) return std::nullopt;
  return JsonError(507, "insufficient_storage", writer->DegradedMessage());
}

}  // namespace internal

std::string QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string key, value;
    if (PercentDecode(pair.substr(0, eq), &key) && key == name) {
      if (eq == std::string_view::npos || !PercentDecode(pair.substr(eq + 1), &value)) return "";
      return value;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

void Api::Handle(HttpRequest request, Responder respond) {
  std::vector<std::string> s;
  if (!SplitPath(request.path, &s)) {
    return respond(JsonError(400, "bad_path", "malformed percent-escape in " + request.path));
  }
  const std::string& m = request.method;
  if (s.size() == 1 && s[0] == "chains") {
    if (m == "POST") return PostChain(request, std::move(respond));
    if (m == "GET") return ListChains(std::move(respond));
    return respond(MethodNotAllowed(m, "GET, POST"));
  }
  if (s.size() == 2 && s[0] == "chains") {
    if (m == "GET") return GetChain(s[1], request.query, std::move(respond));
    if (m == "DELETE") return DeleteChain(s[1], std::move(respond));
    return respond(MethodNotAllowed(m, "GET, DELETE"));
  }
  if (s.size() == 3 && s[0] == "chains" && s[2] == "trigger") {
    if (m != "POST") return respond(MethodNotAllowed(m, "POST"));
    return Trigger(s[1], request, std::move(respond));
  }
  if (!s.empty() && s[0] == "runs") return HandleRuns(request, s, std::move(respond));
  if (!s.empty() && s[0] == "cache") return HandleCache(request, s, std::move(respond));
  if (s.size() == 1 && s[0] == "history") {
    if (m == "GET") return GetHistory(request.query, std::move(respond));
    if (m == "POST") return PostHistory(std::move(request), std::move(respond));
    return respond(MethodNotAllowed(m, "GET, POST"));
  }
  if (s.size() == 1 && s[0] == "predictions") {
    if (m != "GET") return respond(MethodNotAllowed(m, "GET"));
    return GetPredictions(request.query, std::move(respond));
  }
  if (s.size() == 1 && s[0] == "model") {
    if (m != "GET") return respond(MethodNotAllowed(m, "GET"));
    return GetModel(std::move(respond));
  }
  if (s.size() == 2 && s[0] == "model" && s[1] == "train") {
    if (m != "POST") return respond(MethodNotAllowed(m, "POST"));
    return TrainModel(std::move(respond));
  }
  if (s.size() == 1 && (s[0] == "prefetch" || s[0] == "stats" || s[0] == "metrics")) {
    if (m != "GET") return respond(MethodNotAllowed(m, "GET"));
    if (s[0] == "prefetch") return GetPrefetch(std::move(respond));
    return s[0] == "stats" ? GetStats(std::move(respond)) : GetMetrics(std::move(respond));
  }
  if ((s.size() == 1 || s.size() == 2) && s[0] == "tasks") {
    if (m != "GET") return respond(MethodNotAllowed(m, "GET"));
    return s.size() == 1 ? ListTasks(std::move(respond)) : GetTask(s[1], std::move(respond));
  }
  if (s.size() == 1 && (s[0] == "health" || s[0] == "version")) {
    if (m != "GET") return respond(MethodNotAllowed(m, "GET"));
    return s[0] == "health" ? Health(std::move(respond)) : Version(std::move(respond));
  }
  respond(JsonError(404, "not_found", "no such endpoint: " + m + " " + request.path));
}

void Api::HandleRuns(const HttpRequest& request, const std::vector<std::string>& s,
                     Responder respond) {
  const std::string& m = request.method;
  auto only = [&](const char* method) {
    if (m == method) return true;
    respond(MethodNotAllowed(m, method));
    return false;
  };
  if (s.size() == 1) {
    if (only("GET")) ListRuns(request.query, std::move(respond));
  } else if (s.size() == 2) {
    if (only("GET")) GetRun(s[1], std::move(respond));
  } else if (s.size() == 3 && s[2] == "events") {
    if (only("GET")) Events(s[1], request.query, std::move(respond));
  } else if (s.size() == 3 && s[2] == "cancel") {
    if (only("POST")) CancelRun(s[1], std::move(respond));
  } else if (s.size() == 3 && s[2] == "resume") {
    if (only("POST")) ResumeRun(s[1], request, std::move(respond));
  } else if (s.size() == 5 && s[2] == "tasks" && s[4] == "log") {
    if (only("GET")) TaskLog(s[1], s[3], request.query, std::move(respond));
  } else if (s.size() == 5 && s[2] == "tasks" && s[4] == "output") {
    if (only("GET")) TaskOutput(s[1], s[3], std::move(respond));
  } else {
    respond(JsonError(404, "not_found", "no such endpoint: " + m + " " + request.path));
  }
}

void Api::PostChain(const HttpRequest& request, Responder respond) {
  if (auto refused = RefuseWhileDegraded(context_.writer)) return respond(std::move(*refused));
  std::optional<SourceFormat> format = FormatOfContentType(request.Header("content-type"));
  if (!format) {
    return respond(JsonError(415, "unsupported_media_type",
                             "send a chain as application/json or application/yaml, not " +
                                 *request.Header("content-type")));
  }
  LoadOptions options;
  options.format = *format;
  options.require_absolute_executables = true;
  // A task that could never be admitted is refused now, not when it would run.
  const Resources& resources = context_.orchestrator->resources();
  options.resource_misfits = [&resources](const ResourceRequirements& req) {
    return resources.Misfits(req);
  };
  Diagnostics diags;
  bool malformed = false;
  std::optional<Chain> chain = ParseChain(request.body, "request", options, &diags, &malformed);
  if (!chain) {
    json details = json::array();
    for (const Diagnostic& d : diags) details.push_back(DiagnosticToJson(d));
    std::string first = diags.empty() ? "" : ": " + FormatDiagnostic(diags[0]);
    return respond(malformed
                       ? JsonError(400, "malformed_chain", "cannot read the chain" + first, details)
                       : JsonError(422, "invalid_chain",
                                   std::to_string(diags.size()) + " error(s) in the chain" + first,
                                   details));
  }
  // The commit fsyncs: off the loop.
  struct Result {
    ChainVersion version;
    bool created = false;
    bool ok = false;
    std::string err;
  };
  auto result = std::make_shared<Result>();
  auto shared_chain = std::make_shared<Chain>(std::move(*chain));
  Registry* registry = context_.registry;
  QueueWork(
      context_.loop,
      [=] {
        result->ok =
            registry->PutChain(*shared_chain, &result->version, &result->created, &result->err);
      },
      [=] {
        if (!result->ok) return respond(StoreError(result->err));
        respond(Json(result->created ? 201 : 200, {{"chain_id", result->version.chain_id},
                                                   {"version", result->version.version},
                                                   {"created", result->created}}));
      });
}

void Api::GetChain(const std::string& id, const std::string& query, Responder respond) {
  std::string version_text = QueryParam(query, "version");
  std::optional<uint64_t> number = internal::NumberParam(query, "version", 0);
  if (!number || *number > INT32_MAX || (*number == 0 && !version_text.empty())) {
    return respond(JsonError(400, "bad_version",
                             "version must be a number from 1, got \"" + version_text + "\""));
  }
  int version = static_cast<int>(*number);
  std::string format = QueryParam(query, "format");
  if (!format.empty() && format != "json" && format != "yaml") {
    return respond(JsonError(400, "bad_format", "format must be json or yaml"));
  }
  std::optional<ChainVersion> chain;
  std::vector<int> versions;
  std::string err;
  if (!context_.registry->GetChain(id, version, &chain, &err) ||
      !context_.registry->ListChainVersions(id, &versions, &err)) {
    return respond(StoreError(err));
  }
  if (!chain) {
    return respond(
        JsonError(404, "not_found",
                  version ? "chain " + id + " has no version " + version_text : "no chain " + id));
  }
  if (format == "yaml") {
    HttpResponse r;
    r.content_type = "application/yaml";
    r.body = JsonToYaml(chain->definition);
    return respond(std::move(r));
  }
  json body = ChainSummary(*chain);
  body["versions"] = versions;
  body["definition"] = chain->definition;
  respond(Json(200, body));
}

void Api::ListChains(Responder respond) {
  std::vector<ChainVersion> chains;
  std::string err;
  if (!context_.registry->ListChains(&chains, &err)) return respond(StoreError(err));
  json list = json::array();
  for (const ChainVersion& c : chains) list.push_back(ChainSummary(c));
  respond(Json(200, {{"chains", list}}));
}

void Api::DeleteChain(const std::string& id, Responder respond) {
  if (auto refused = RefuseWhileDegraded(context_.writer)) return respond(std::move(*refused));
  struct Result {
    bool existed = false;
    bool ok = false;
    std::string err;
  };
  auto result = std::make_shared<Result>();
  Registry* registry = context_.registry;
  QueueWork(
      context_.loop,
      [=] { result->ok = registry->DeleteChain(id, &result->existed, &result->err); },
      [=] {
        if (!result->ok) return respond(StoreError(result->err));
        if (!result->existed) return respond(JsonError(404, "not_found", "no chain " + id));
        respond(Json(200, {{"chain_id", id}, {"deleted", true}}));
      });
}

void Api::GetTask(const std::string& id, Responder respond) {
  std::vector<TaskVersion> versions;
  std::string err;
  if (!context_.registry->GetTask(id, &versions, &err)) return respond(StoreError(err));
  if (versions.empty()) return respond(JsonError(404, "not_found", "no task " + id));
  json list = json::array();
  for (const TaskVersion& t : versions) list.push_back(TaskJson(t));
  respond(Json(200, {{"task_id", id}, {"versions", list}}));
}

void Api::ListTasks(Responder respond) {
  std::vector<TaskVersion> tasks;
  std::string err;
  if (!context_.registry->ListTasks(&tasks, &err)) return respond(StoreError(err));
  json list = json::array();
  for (const TaskVersion& t : tasks) {
    list.push_back({{"task_id", t.task_id},
                    {"versions", t.version},
                    {"content_hash", t.content_hash},
                    {"created_unix_ms", t.created_unix_ms},
                    {"used_by", UsedBy(t)}});
  }
  respond(Json(200, {{"tasks", list}}));
}

void Api::Health(Responder respond) {
  int64_t uptime_ms = RealUnixMs() - context_.started_unix_ms;
  json store = StoreHealth(context_.writer);
  bool ok = store["ok"].get<bool>();
  respond(Json(200, {{"status", ok ? "ok" : "degraded"},
                     {"store", std::move(store)},
                     {"pid", getpid()},
                     {"version", kVersion},
                     {"uptime_s", uptime_ms / 1000},
                     {"socket", context_.socket_path},
                     {"state_dir", context_.state_dir},
                     {"task_cgroups", context_.task_cgroups},
                     {"resources", ResourcesJson(context_.orchestrator->resources())}}));
}

void Api::Version(Responder respond) {
  respond(Json(200, {{"version", kVersion}, {"api", 1}, {"store_format", context_.store_format}}));
}

}  // namespace chainctl::daemon
