#include "daemon/http/wire.h"

#include <algorithm>
#include <cstdio>

namespace chainctl::daemon {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 9110 token characters.
bool IsToken(std::string_view s) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

// No CR, LF or NUL: a value cannot end its line early or smuggle a header in.
bool IsFieldValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Headers the server writes itself from the framing.
bool IsFramingHeader(std::string_view name) {
  return EqualsIgnoringAsciiCase(name, "content-length") ||
         EqualsIgnoringAsciiCase(name, "transfer-encoding") ||
         EqualsIgnoringAsciiCase(name, "connection");
}

}  // namespace

bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return AsciiLower(x) == AsciiLower(y);
         });
}

bool CheckResponse(const HttpResponse& response, std::string* err) {
  if (response.status < 200 || response.status > 599) {
    *err = "status " + std::to_string(response.status) + " is not in 200..599";
    return false;
  }
  if (!IsFieldValue(response.content_type)) {
    *err = "the content type contains CR, LF or NUL";
    return false;
  }
  for (const auto& [name, value] : response.headers) {
    if (!IsToken(name)) {
      *err = "invalid header name \"" + name + "\"";
      return false;
    }
    if (!IsFieldValue(value)) {
      *err = "the value of header " + name + " contains CR, LF or NUL";
      return false;
    }
  }
  return true;
}

bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

std::string ResponseHead(const HttpResponse& response, BodyFraming framing,
                         ConnectionHeader connection) {
  std::string head = "HTTP/1.1 " + std::to_string(response.status) + " ";
  head += HttpStatusReason(response.status);
  head += "\r\n";
  if (!response.content_type.empty()) head += "Content-Type: " + response.content_type + "\r\n";
  for (const auto& [name, value] : response.headers) {
    if (!IsFramingHeader(name)) head += name + ": " + value + "\r\n";
  }
  if (StatusHasBody(response.status)) {
    if (framing == BodyFraming::kLength) {
      head += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
    } else if (framing == BodyFraming::kChunked) {
      head += "Transfer-Encoding: chunked\r\n";
    }
  }
  if (connection == ConnectionHeader::kClose) head += "Connection: close\r\n";
  if (connection == ConnectionHeader::kKeepAlive) head += "Connection: keep-alive\r\n";
  head += "\r\n";
  return head;
}

std::string Chunk(std::string_view data) {
  char size[24];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string chunk;
  chunk.reserve(static_cast<size_t>(n) + data.size() + 2);
  chunk.append(size, static_cast<size_t>(n));
  chunk.append(data);
  chunk.append("\r\n");
  return chunk;
}

}  // namespace chainctl::daemon
