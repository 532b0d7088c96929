// Helpers shared by the API's handlers (api.cc and the *_routes.cc files). Not for other parts.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/http/types.h"
#include "daemon/store/store_writer.h"

namespace chainctl::daemon::internal {

// A JSON answer; invalid UTF-8 in strings is replaced, never thrown on.
HttpResponse Json(int status, const nlohmann::json& body);

// 500 store_error: "the store failed: <err>".
HttpResponse StoreError(const std::string& err);

// A non-negative integer query parameter; `fallback` if absent; nullopt if malformed.
std::optional<uint64_t> NumberParam(std::string_view query, std::string_view name,
                                    uint64_t fallback);

// 405 method_not_allowed, with the Allow header (`allowed`: "GET, POST").
HttpResponse MethodNotAllowed(const std::string& method, const std::string& allowed);

// 400 bad_parameter: "<name> must be a whole number".
HttpResponse BadParam(std::string_view name);

// 507 insufficient_storage while the store writer is degraded (store_writer.h): a write now
// would fail too, or be stored before the writes that wait. nullopt when it is not (or null).
std::optional<HttpResponse> RefuseWhileDegraded(const StoreWriter* writer);

}  // namespace chainctl::daemon::internal
