// The bytes of HTTP/1.1 responses as the server writes them: the status line and headers, and
// the chunks of a streamed body. Pure functions; the connection decides which to send.
#pragma once

#include <string>
#include <string_view>

#include "daemon/http/types.h"

namespace chainctl::daemon {

// How the end of a body is shown to the client.
enum class BodyFraming {
  kLength,      // Content-Length: the size of HttpResponse::body
  kChunked,     // Transfer-Encoding: chunked (a streamed body)
  kUntilClose,  // neither: the body ends when the connection closes (HTTP/1.0 streaming)
};

// What the Connection header says, if anything.
enum class ConnectionHeader {
  kNone,       // HTTP/1.1 keep-alive is the default
  kClose,      // the server closes after this response
  kKeepAlive,  // an HTTP/1.0 client asked for keep-alive and gets it
};

// False, with *err set, if `response` cannot be written as it is: a status outside
// 200..599, or a header name or value (or the content type) that would break the framing.
bool CheckResponse(const HttpResponse& response, std::string* err);

// The status line and headers of `response`, ending with the empty line. `response` must
// pass CheckResponse. Statuses without a body (204, 304) get no Content-Length and no
// Transfer-Encoding; their body is not to be sent.
std::string ResponseHead(const HttpResponse& response, BodyFraming framing,
                         ConnectionHeader connection);

// Whether a response of this status carries a body (not 1xx, 204, 304).
bool StatusHasBody(int status);

// One chunk of a chunked body; `data` must not be empty (an empty chunk ends the body).
std::string Chunk(std::string_view data);

// ASCII case-insensitive comparison, for header names and tokens.
bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b);

inline constexpr std::string_view kLastChunk = "0\r\n\r\n";
inline constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace chainctl::daemon
