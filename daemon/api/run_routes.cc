// The run endpoints of the API (DESIGN.md §6): trigger, runs, events, logs, outputs, cancel,
// resume. Routing is in api.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

#include "common/json_text.h"
#include "daemon/api/api.h"
#include "daemon/api/internal.h"
#include "daemon/http/body_stream.h"
#include "daemon/util/log_bound.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

using internal::BadParam;
using internal::Json;
using internal::NumberParam;
using internal::StoreError;

HttpResponse ErrorResponse(const RunError& e) {
  return JsonError(e.status, e.code, e.message, e.details);
}

// A log response: at most kMaxLog bytes, held in chaind's memory kLogPiece at a time (a
// `tail` is looked for in the last kTailWindow bytes read).
constexpr size_t kMaxLog = 16 << 20;
constexpr size_t kLogPiece = 64 << 10;
constexpr size_t kTailWindow = 1 << 20;

// The part of a log of `size` bytes to send: from byte `offset` on, at most `max_bytes`; or
// with offset 0 its end, the last `max_bytes` of its data (what BoundLog dropped not counted).
// `cut`: the start was left out.
struct LogRange {
  size_t from = 0;
  size_t end = 0;
  bool cut = false;
};
LogRange RangeOf(int fd, size_t size, size_t offset, size_t max_bytes) {
  LogRange r;
  if (offset > 0) {
    r.from = std::min(offset, size);
    r.end = r.from + std::min(size - r.from, max_bytes);
  } else {
    r.from = static_cast<size_t>(StartOfLastData(fd, size, max_bytes));
    r.end = size;
    r.cut = r.from > 0;
  }
  return r;
}

// Bytes [from, from + max) of `fd` (fewer at its end or on a read error).
std::string ReadAt(int fd, size_t from, size_t max) {
  std::string out(max, '\0');
  size_t got = 0;
  while (got < max) {
    ssize_t n = pread(fd, out.data() + got, max - got, static_cast<off_t>(from + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

// Sends bytes [next, end) of a file through `stream`, a piece each time the client has taken
// the last one. Owns the descriptor; lives as long as the stream's drain callback.
class LogSender {
 public:
  LogSender(int fd, size_t next, size_t end) : fd_(fd), next_(next), end_(end) {}
  ~LogSender() { close(fd_); }
  LogSender(const LogSender&) = delete;
  LogSender& operator=(const LogSender&) = delete;

  // The next piece: bytes of the log, or the marker of bytes dropped there (log_bound.h); ""
  // once all is read (or the file was cut short under us).
  std::string Next() {
    uint64_t from = 0, to = 0;
    LogData(fd_, next_, end_, &from, &to);
    if (from > next_) {
      std::string marker = DroppedMarker(from - next_);
      next_ = static_cast<size_t>(from);
      return marker;
    }
    std::string piece = ReadAt(fd_, next_, std::min<size_t>(kLogPiece, to - next_));
    next_ = piece.empty() ? end_ : next_ + piece.size();
    return piece;
  }
  bool done() const { return next_ >= end_; }
  // On the loop, each time `stream` has sent what it was given.
  void SendNext(HttpBodyStream* stream) {
    std::string piece = Next();
    if (piece.empty() || !stream->Write(std::move(piece)) || next_ >= end_) stream->End();
  }

 private:
  int fd_;
  size_t next_;
  size_t end_;
};

// The last `lines` lines of `text`.
std::string LastLines(const std::string& text, size_t lines) {
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  size_t pos = end;
  while (lines > 0 && pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
    --lines;
  }
  return lines > 0 ? text : text.substr(pos + 1);
}

// The "env" ({NAME: "value"}), "tasks" (["task_id", ...]) and "no_cache" (a boolean) of a trigger
// or resume body; a 400 if one is of the wrong shape (the orchestrator checks names and ids: 422).
std::optional<HttpResponse> DecodeRunParams(const json& body, Orchestrator::RunParams* params) {
  if (const auto env = body.find("env"); env != body.end()) {
    if (!env->is_object()) {
      return JsonError(400, "bad_env", "env must be an object of strings: {\"NAME\": \"value\"}");
    }
    for (const auto& [name, value] : env->items()) {
      if (!value.is_string()) {
        return JsonError(400, "bad_env", "env: the value of " + name + " must be a string");
      }
      params->env[name] = value.get<std::string>();
    }
  }
  if (const auto tasks = body.find("tasks"); tasks != body.end()) {
    if (!tasks->is_array()) return JsonError(400, "bad_tasks", "tasks must be a list of task ids");
    for (const json& id : *tasks) {
      if (!id.is_string()) return JsonError(400, "bad_tasks", "tasks must be a list of task ids");
      params->tasks.push_back(id.get<std::string>());
    }
  }
  if (const auto no_cache = body.find("no_cache"); no_cache != body.end()) {
    if (!no_cache->is_boolean())
      return JsonError(400, "bad_no_cache", "no_cache must be a boolean");
    params->no_cache = no_cache->get<bool>();
  }
  return std::nullopt;
}

}  // namespace

void Api::Trigger(const std::string& chain_id, const HttpRequest& request, Responder respond) {
  json body = json::object();
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (!request.body.empty() && !DecodeJsonText(request.body, &body, &fault, &why)) {
    // Well-formed but too deep for chaind (and for the tasks' JSON libraries) is invalid input.
    if (fault == JsonTextFault::kTooDeep) {
      return respond(JsonError(422, "input_too_deep", "the body " + why));
    }
    return respond(JsonError(400, "malformed_request",
                             "the body must be a JSON object such as {\"input\": {...}}: " + why));
  }
  if (!body.is_object()) {
    return respond(JsonError(400, "malformed_request",
                             "the body must be a JSON object such as {\"input\": {...}}"));
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "input" && key != "version" && key != "env" && key != "tasks" && key != "no_cache") {
      return respond(JsonError(400, "unknown_field",
                               "unknown field \"" + key +
                                   "\"; known: input, version, env, tasks, "
                                   "no_cache"));
    }
  }
  Orchestrator::RunParams params;
  if (std::optional<HttpResponse> bad = DecodeRunParams(body, &params)) return respond(*bad);
  int version = 0;
  if (body.contains("version")) {
    if (!body["version"].is_number_unsigned() || body["version"].get<uint64_t>() < 1 ||
        body["version"].get<uint64_t>() > INT32_MAX) {
      return respond(JsonError(400, "bad_version", "version must be a number from 1"));
    }
    version = body["version"].get<int>();
  }
  json input = body.contains("input") ? body["input"] : json::object();
  context_.orchestrator->Trigger(
      chain_id, version, std::move(input),
      [respond](std::optional<RunError> error, const std::string& run_id) {
        if (error) return respond(ErrorResponse(*error));
        respond(Json(202, {{"run_id", run_id}}));
      },
      std::move(params));
}

void Api::ListRuns(const std::string& query, Responder respond) {
  std::optional<uint64_t> limit = NumberParam(query, "limit", 100);
  if (!limit) return respond(BadParam("limit"));
  std::vector<json> runs;
  std::string err;
  if (!context_.orchestrator->ListRuns(QueryParam(query, "chain"), *limit, &runs, &err)) {
    return respond(StoreError(err));
  }
  json list = json::array();
  for (json& run : runs) {
    run.erase("input");
    run.erase("output");
    list.push_back(std::move(run));
  }
  respond(Json(200, {{"runs", list}}));
}

void Api::GetRun(const std::string& id, Responder respond) {
  std::optional<json> run;
  std::string err;
  if (!context_.orchestrator->GetRun(id, &run, &err)) {
    return respond(StoreError(err));
  }
  if (!run) return respond(ErrorResponse(context_.orchestrator->NoRun(id)));
  respond(Json(200, *run));
}

void Api::Events(const std::string& id, const std::string& query, Responder respond) {
  bool follow = QueryParam(query, "follow") == "1" || QueryParam(query, "follow") == "true";
  auto stream = std::make_shared<HttpBodyStream>();
  Orchestrator* orchestrator = context_.orchestrator;
  uint64_t follower_id = 0;
  std::optional<RunError> error =
      orchestrator->Follow(id, follow,
                           {.events = [stream](const std::string& lines) { stream->Write(lines); },
                            .end = [stream] { stream->End(); }},
                           &follower_id);
  if (error) return respond(ErrorResponse(*error));
  if (follower_id) {
    stream->SetOnAbort(
        [orchestrator, id, follower_id] { orchestrator->Unfollow(id, follower_id); });
  }
  HttpResponse r;
  r.content_type = "application/x-ndjson";
  r.stream = stream;
  respond(std::move(r));
}

void Api::TaskLog(const std::string& id, const std::string& task, const std::string& query,
                  Responder respond) {
  std::optional<uint64_t> attempt = NumberParam(query, "attempt", 0);
  std::optional<uint64_t> tail = NumberParam(query, "tail", 0);
  std::optional<uint64_t> offset = NumberParam(query, "offset", 0);
  if (!attempt || *attempt > INT32_MAX) return respond(BadParam("attempt"));
  if (!tail) return respond(BadParam("tail"));
  if (!offset) return respond(BadParam("offset"));
  std::string path;
  if (std::optional<RunError> error =
          context_.orchestrator->LogPath(id, task, static_cast<int>(*attempt), &path)) {
    return respond(ErrorResponse(*error));
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    int error_no = errno;
    if (fd >= 0) close(fd);
    std::string why = path + ": " + std::strerror(error_no);
    if (error_no == ENOENT) {
      return respond(JsonError(404, "no_log",
                               "no log: " + why +
                                   " (chaind keeps the files of the newest runs only: "
                                   "--keep-run-files)"));
    }
    return respond(JsonError(500, "io_error", "cannot read the log: " + why));
  }
  LogRange range =
      RangeOf(fd, static_cast<size_t>(st.st_size), *offset, *tail ? kTailWindow : kMaxLog);
  HttpResponse r;
  r.content_type = "text/plain; charset=utf-8";
  if (range.cut) r.headers.emplace_back("X-Chainctl-Log-Truncated", "1");
  r.headers.emplace_back("X-Chainctl-Log-End", std::to_string(range.end));  // the next offset
  auto sender = std::make_shared<LogSender>(fd, range.from, range.end);
  if (*tail) {
    std::string text;
    for (std::string piece; !(piece = sender->Next()).empty();) text += piece;
    r.body = LastLines(text, *tail);
    return respond(std::move(r));
  }
  r.body = sender->Next();
  if (!sender->done()) {  // the rest as the client takes it
    r.stream = std::make_shared<HttpBodyStream>();
    r.stream->SetOnDrained([sender, stream = std::weak_ptr<HttpBodyStream>(r.stream)] {
      if (std::shared_ptr<HttpBodyStream> locked = stream.lock()) sender->SendNext(locked.get());
    });
  }
  respond(std::move(r));
}

void Api::TaskOutput(const std::string& id, const std::string& task, Responder respond) {
  std::optional<json> output;
  std::string err;
  if (!context_.orchestrator->GetOutput(id, task, &output, &err)) {
    return respond(StoreError(err));
  }
  if (!output) {
    return respond(JsonError(404, "not_found", "no output of task " + task + " in run " + id));
  }
  respond(Json(200, *output));
}

void Api::CancelRun(const std::string& id, Responder respond) {
  if (std::optional<RunError> error = context_.orchestrator->Cancel(id)) {
    return respond(ErrorResponse(*error));
  }
  respond(Json(202, {{"run_id", id}, {"cancelling", true}}));
}

void Api::ResumeRun(const std::string& id, const HttpRequest& request, Responder respond) {
  json body = json::object();
  JsonTextFault fault = JsonTextFault::kNone;
  std::string why;
  if (!request.body.empty() &&
      (!DecodeJsonText(request.body, &body, &fault, &why) || !body.is_object())) {
    return respond(JsonError(400, "malformed_request",
                             "the body must be a JSON object such as {\"env\": {...}}" +
                                 (why.empty() ? std::string() : ": " + why)));
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "env" && key != "no_cache") {
      return respond(
          JsonError(400, "unknown_field", "unknown field \"" + key + "\"; known: env, no_cache"));
    }
  }
  Orchestrator::RunParams params;
  if (std::optional<HttpResponse> bad = DecodeRunParams(body, &params)) return respond(*bad);
  context_.orchestrator->Resume(
      id,
      [respond](std::optional<RunError> error, const std::string& run_id) {
        if (error) return respond(ErrorResponse(*error));
        respond(Json(202, {{"run_id", run_id}, {"resumed", true}}));
      },
      std::move(params));
}

}  // namespace chainctl::daemon
