#include "cli/api_call.h"

#include <unistd.h>

#include "cli/app.h"
#include "cli/output.h"
#include "common/diagnostic.h"

namespace chainctl::cli {

int Call(const DaemonOptions& daemon, const HttpClientRequest& request,
         HttpClientResponse* response, std::ostream& err) {
  std::string why;
  if (!CallDaemon(ResolveDaemonOptions(daemon), request, response, &why)) {
    err << "chainctl: " << why << "\n";
    return kExitUnreachable;
  }
  if (response->status >= 200 && response->status < 300) return kExitOk;
  err << "chainctl: " << ApiErrorMessage(*response) << "\n";
  nlohmann::json body = nlohmann::json::parse(response->body, nullptr, false);
  if (body.is_object() && body["error"].is_object() && body["error"]["details"].is_array()) {
    for (const auto& d : body["error"]["details"]) {
      if (d.is_object() && d.contains("task_id")) {  // a run's input, per task
        err << "  task " << d.value("task_id", "") << ": "
            << (d.value("pointer", "").empty() ? "(root)" : d.value("pointer", "")) << ": "
            << d.value("message", "") << "\n";
      } else if (d.is_object() && d.contains("message")) {  // DiagnosticToJson's form
        err << FormatDiagnostic({d.value("file", ""),
                                 {d.value("line", 0), d.value("column", 0)},
                                 d.value("path", ""),
                                 d.value("message", "")})
            << "\n";
      }
    }
  }
  int s = response->status;
  if (s == 404) return kExitNotFound;
  return s == 400 || s == 413 || s == 415 || s == 422 ? kExitInvalid : kExitUnreachable;
}

int Fetch(const DaemonOptions& daemon, const std::string& target, const std::string& output,
          std::ostream& out, std::ostream& err, nlohmann::json* body) {
  HttpClientResponse response;
  if (int status = Call(daemon, {"GET", target, "", ""}, &response, err); status != kExitOk) {
    return status;
  }
  nlohmann::json answer = nlohmann::json::parse(response.body, nullptr, false);
  OutputFormat format = ParseOutputFormat(output, isatty(1));
  if (format == OutputFormat::kTable) {
    *body = std::move(answer);
  } else {
    PrintData(out, answer, format);
  }
  return kExitOk;
}

int ApplyChain(const DaemonOptions& daemon, const Chain& chain, nlohmann::json* answer,
               std::ostream& err) {
  HttpClientRequest request{"POST", "/chains", "application/json", ChainToJson(chain).dump()};
  HttpClientResponse response;
  int status = Call(daemon, request, &response, err);
  if (status == kExitOk) *answer = nlohmann::json::parse(response.body, nullptr, false);
  return status;
}

}  // namespace chainctl::cli
