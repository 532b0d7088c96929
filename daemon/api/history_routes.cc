// The history endpoints of the API (DESIGN.md §6): GET /history (query) and POST /history
// (import of JSONL v1). Routing is in api.cc.
#include <algorithm>
#include <memory>
#include <string_view>
#include <utility>

#include "common/diagnostic.h"
#include "common/predict/history_file.h"
#include "daemon/api/api.h"
#include "daemon/api/internal.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

using internal::BadParam;
using internal::Json;
using internal::NumberParam;
using internal::StoreError;

// The invalid lines of a POST /history body listed in the 422's details.
constexpr size_t kMaxImportErrorDetails = 20;

// Whether a POST /history body of this Content-Type is read as JSONL (parameters such as
// "; charset=utf-8" ignored).
bool IsJsonlContentType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type == "application/x-ndjson" || type == "application/jsonl";
}

// One POST /history, passed from the loop to the thread pool and back.
struct Import {
  std::string body;
  std::vector<HistoryRecord> records;  // in body order; seq set once stored
  size_t bad_lines = 0;
  json details = json::array();  // of the first kMaxImportErrorDetails bad lines
  std::string first_error;       // "line 3: ..."
  bool stored = false;
  size_t skipped = 0;  // records stored already (History::Import)
  std::string err;     // of the store
};

// Parses every line of import->body into import->records, or counts and describes the bad
// ones. Pure: runs on the thread pool.
void ParseBody(Import* import) {
  std::string_view rest = import->body;
  size_t line = 0;
  auto bad = [&](const std::string& message) {
    if (import->bad_lines++ == 0)
      import->first_error = "line " + std::to_string(line) + ": " + message;
    if (import->details.size() < kMaxImportErrorDetails) {
      import->details.push_back(
          DiagnosticToJson({"request", {static_cast<int>(line), 0}, "", message}));
    }
  };
  while (!rest.empty()) {
    ++line;
    size_t newline = rest.find('\n');
    std::string_view text = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (IsBlankHistoryLine(text)) continue;
    if (text.size() > kMaxHistoryLineBytes) {
      bad("the line is longer than " + std::to_string(kMaxHistoryLineBytes) + " bytes");
      continue;
    }
    HistoryRecord record;
    std::string err;
    if (!ParseHistoryLine(text, &record, &err)) {
      bad(err);
    } else if (import->bad_lines == 0) {
      import->records.push_back(std::move(record));
    }
  }
}

}  // namespace

void Api::GetHistory(const std::string& query, Responder respond) {
  HistoryQuery q;
  q.task_id = QueryParam(query, "task");
  q.chain_id = QueryParam(query, "chain");
  q.run_id = QueryParam(query, "run");
  std::optional<uint64_t> limit = NumberParam(query, "limit", 1000);
  std::optional<uint64_t> after = NumberParam(query, "after", 0);
  std::optional<uint64_t> before = NumberParam(query, "before", 0);
  std::optional<uint64_t> since = NumberParam(query, "since", 0);
  std::optional<uint64_t> until = NumberParam(query, "until", INT64_MAX);
  for (auto [name, value] :
       {std::pair{"limit", limit}, std::pair{"after", after}, std::pair{"before", before},
        std::pair{"since", since}, std::pair{"until", until}}) {
    if (!value || *value > INT64_MAX) return respond(BadParam(name));
  }
  std::string order = QueryParam(query, "order");
  if (!order.empty() && order != "oldest" && order != "newest") {
    return respond(JsonError(400, "bad_parameter", "order must be oldest or newest"));
  }
  q.limit = std::min<uint64_t>(*limit, 10000);
  q.after_seq = *after;
  q.before_seq = *before;
  q.since_unix_ms = static_cast<int64_t>(*since);
  q.until_unix_ms = static_cast<int64_t>(*until);
  q.newest_first = order == "newest";
  std::vector<HistoryRecord> records;
  std::string err;
  if (!context_.history->Find(q, &records, &err)) {
    return respond(StoreError(err));
  }
  std::string format = QueryParam(query, "format");
  if (!format.empty() && format != "json" && format != "jsonl") {
    return respond(JsonError(400, "bad_parameter", "format must be json or jsonl"));
  }
  json list = json::array();
  for (const HistoryRecord& r : records) {
    list.push_back(format == "jsonl" ? ToJsonlV1(r) : HistoryRecordToJson(r));
  }
  json body = {{"records", list}};
  if (records.size() == q.limit && !records.empty()) body["next"] = records.back().seq;
  respond(Json(200, body));
}

void Api::PostHistory(HttpRequest request, Responder respond) {
  if (const std::string* type = request.Header("content-type");
      type && !IsJsonlContentType(*type)) {
    return respond(JsonError(415, "unsupported_media_type",
                             "send history JSONL v1 as application/x-ndjson or application/jsonl, "
                             "not " +
                                 *type));
  }
  if (auto refused = internal::RefuseWhileDegraded(context_.writer)) {
    return respond(std::move(*refused));
  }
  // Parsing up to 16 MiB and the commit (which fsyncs) both run off the loop.
  auto import = std::make_shared<Import>();
  import->body = std::move(request.body);
  History* history = context_.history;
  auto on_appended = context_.on_history_appended;
  QueueWork(
      context_.loop,
      [=] {
        ParseBody(import.get());
        import->body = std::string();
        if (import->bad_lines == 0 && !import->records.empty()) {
          import->stored = history->Import(&import->records, &import->skipped, &import->err);
        }
      },
      [=] {
        if (import->bad_lines > 0) {
          std::string message = import->first_error;
          if (import->bad_lines > 1) {
            message += " (" + std::to_string(import->bad_lines) + " invalid lines)";
          }
          return respond(JsonError(422, "invalid_history", message, import->details));
        }
        const std::vector<HistoryRecord>& records = import->records;
        if (!import->stored && !records.empty()) return respond(StoreError(import->err));
        json body = {{"imported", records.size()}, {"skipped", import->skipped}};
        if (records.empty()) return respond(Json(200, body));
        if (on_appended) on_appended(records);  // only what was stored now
        body["first_seq"] = records.front().seq;
        body["last_seq"] = records.back().seq;
        respond(Json(200, body));
      });
}

}  // namespace chainctl::daemon
