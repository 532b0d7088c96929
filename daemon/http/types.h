// The values that pass between chaind's HTTP server (daemon/http/server.h) and the API layer
// on top of it: limits, a parsed request, a response, and the callback types that carry them.
// All of it is plain data; nothing here does I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chainctl::daemon {

class HttpBodyStream;

// What one client may ask of the server. A limit of 0 for a timeout disables that timeout.
struct HttpLimits {
  // Request line and headers, with their line ends. Over it: 431, then close.
  size_t max_header_bytes = 16 * 1024;
  // Request body (Content-Length or the sum of chunks). Over it: 413 and close; the rest of
  // the body is not read.
  size_t max_body_bytes = 16 * 1024 * 1024;
  // A connection with no request started for this long is closed without a response; so is
  // one whose response has not been written out this long after it was queued (a client
  // that does not read).
  uint64_t idle_timeout_ms = 60'000;
  // A request must arrive completely within this time of its first byte: else 408 and close.
  uint64_t request_timeout_ms = 30'000;
  // Connections served at once; one more is answered 503 and closed.
  size_t max_connections = 256;
};

// One request, complete with its body.
struct HttpRequest {
  std::string method;  // "GET", "POST", ... (http_method_str)
  std::string path;    // as sent, still percent-encoded: "/chains/etl"
  std::string query;   // after '?', without it; empty if none
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, in order
  std::string body;
  uint32_t peer_uid = 0;  // of the client process, from SO_PEERCRED at accept
  int32_t peer_pid = 0;

  // The value of the first header named `lower_name`, or nullptr.
  const std::string* Header(std::string_view lower_name) const;
};

// One response. The server adds Content-Length (or Transfer-Encoding: chunked when
// `stream` is set) and Connection; a Content-Length, Transfer-Encoding or Connection among
// `headers` is not sent as is ("Connection: close" there makes the server close after it).
struct HttpResponse {
  int status = 200;                               // 200..599
  std::string content_type = "application/json";  // no Content-Type header if empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // If set, the body is streamed: `body` (if not empty) is its first chunk and the rest is
  // written through the stream until HttpBodyStream::End (daemon/http/body_stream.h).
  std::shared_ptr<HttpBodyStream> stream;
};

// Answers one request. Call it once, on the loop thread, now or later (after work on the
// libuv thread pool, say); further calls do nothing, and so does a call after the
// connection has gone. A Responder may be copied, and its copies may be destroyed on any
// thread. If the last copy is destroyed on the loop thread without having been called, the
// request is answered 500 (a handler that forgot to answer). Dropping it uncalled on another
// thread is a bug the server cannot see: the connection would wait, and Shutdown with it.
using Responder = std::function<void(HttpResponse)>;

// Handles one request; runs on the loop thread. The connection reads no further request
// until `respond` is called. Exceptions thrown by a handler are answered 500.
using Handler = std::function<void(HttpRequest request, Responder respond)>;

// A response with the body {"error": {"code": code, "message": message, "details": details}}
// (details is null if not given), the form of every error of the API (DESIGN.md §6).
HttpResponse JsonError(int status, std::string code, std::string message,
                       nlohmann::json details = nullptr);

// The reason phrase of `status` ("Not Found"), or "Unknown".
std::string_view HttpStatusReason(int status);

}  // namespace chainctl::daemon
