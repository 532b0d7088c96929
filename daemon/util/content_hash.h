// Content addresses of stored definitions: SHA-256 (OpenSSL libcrypto) over a canonical JSON
// text. Thread-safe: no state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace chainctl::daemon {

// The canonical text of `value`: compact JSON with object members sorted by key (the order of
// nlohmann::json's std::map). Equal values give equal texts. Invalid UTF-8 in strings (which
// validated chains never hold) is replaced by U+FFFD rather than thrown on.
std::string CanonicalJson(const nlohmann::json& value);

// Sets `*hex` to the 64 lowercase hex digits of the SHA-256 of `data`.
bool Sha256Hex(std::string_view data, std::string* hex, std::string* err);

// Sha256Hex(CanonicalJson(value)).
bool JsonContentHash(const nlohmann::json& value, std::string* hex, std::string* err);

}  // namespace chainctl::daemon
