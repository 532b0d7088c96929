#include "cli/cmd_cache.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "cli/api_call.h"
#include "cli/app.h"
#include "cli/output.h"
#include "common/units.h"

namespace chainctl::cli {
namespace {

using nlohmann::json;

// Whether chaind's answer is a JSON object, as it should be; else says so (exit 3).
bool IsObject(const json& body, std::ostream& err) {
  if (body.is_object()) return true;
  err << "chainctl: chaind's answer is not a JSON object\n";
  return false;
}

// A byte count of an answer as "1.5Gi"; "-" if it is not one.
std::string Size(const json& bytes) {
  return bytes.is_number_unsigned() ? FormatSize(bytes.get<uint64_t>()) : "-";
}

int Stats(const CacheOptions& options, std::ostream& out, std::ostream& err) {
  json body;
  if (int status = Fetch(options.daemon, "/cache", options.output, out, err, &body);
      status != kExitOk || body.is_null()) {
    return status;
  }
  if (!IsObject(body, err)) return kExitUnreachable;
  PrintTable(out, {"task cache", ""},
             {{"folder", body.value("dir", "")},
              {"entries", std::to_string(body.value("entries", uint64_t{0}))},
              {"size", Size(body["bytes"]) + " of " + Size(body["max_bytes"])}});
  return kExitOk;
}

// prune and clear: the request, then what was removed.
int Remove(const CacheOptions& options, const HttpClientRequest& request, std::ostream& out,
           std::ostream& err) {
  HttpClientResponse response;
  if (int status = Call(options.daemon, request, &response, err); status != kExitOk) {
    return status;
  }
  json body = json::parse(response.body, nullptr, false);
  if (!IsObject(body, err)) return kExitUnreachable;
  OutputFormat format = ParseOutputFormat(options.output, isatty(STDOUT_FILENO) == 1);
  if (format != OutputFormat::kTable) {
    PrintData(out, body, format);
  } else {
    out << "removed " << body.value("removed", uint64_t{0}) << " entries ("
        << Size(body["bytes_removed"]) << ")\n";
  }
  return kExitOk;
}

}  // namespace

int RunCache(const CacheOptions& options, std::ostream& out, std::ostream& err) {
  if (!options.max_size.empty() && options.action != "prune") {
    err << "chainctl: --max-size is for cache prune only\n";
    return kExitInvalid;
  }
  if (options.action == "stats") return Stats(options, out, err);
  if (options.action == "clear") return Remove(options, {"DELETE", "/cache", "", ""}, out, err);
  HttpClientRequest request{"POST", "/cache/prune", "", ""};
  if (!options.max_size.empty()) {
    std::string why;
    std::optional<uint64_t> max_bytes = ParseSize(options.max_size, &why);
    if (!max_bytes) {
      err << "chainctl: --max-size " << options.max_size << ": " << why << "\n";
      return kExitInvalid;
    }
    request.content_type = "application/json";
    request.body = json{{"max_bytes", *max_bytes}}.dump();
  }
  return Remove(options, request, out, err);
}

}  // namespace chainctl::cli
