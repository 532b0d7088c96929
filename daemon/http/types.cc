#include "daemon/http/types.h"

#include <http_parser.h>

#include "common/json_text.h"

namespace chainctl::daemon {

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpResponse JsonError(int status, std::string code, std::string message, nlohmann::json details) {
  nlohmann::json error = {
      {"code", std::move(code)}, {"message", std::move(message)}, {"details", std::move(details)}};
  HttpResponse response;
  response.status = status;
  // A message may quote client bytes that are not UTF-8: replace them rather than throw.
  response.body = DumpJson(nlohmann::json{{"error", std::move(error)}});
  return response;
}

std::string_view HttpStatusReason(int status) {
  switch (status) {
#define CHAINCTL_STATUS_CASE(num, name, text) \
  case num:                                   \
    return #text;
    HTTP_STATUS_MAP(CHAINCTL_STATUS_CASE)
#undef CHAINCTL_STATUS_CASE
    default:
      return "Unknown";
  }
}

}  // namespace chainctl::daemon
