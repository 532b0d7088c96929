// A small blocking HTTP/1.1 client over a Unix socket, for talking to chaind.
// One request per connection; every wait is bounded by a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace chainctl::cli {

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query
  std::string content_type;  // set with a body
  std::string body;
};

struct HttpClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
};

enum class HttpCallError {
  kNone,
  kNoDaemon,     // nothing listens on the socket (missing, refused): worth starting one
  kTimeout,      // connected, but the answer did not come in time
  kProtocol,     // the answer was not HTTP
  kIo,           // any other failure of the socket
  kInterrupted,  // InterruptCalls() while waiting for the answer
};

// For a SIGINT handler of a command that waits (async-signal-safe): a call waiting for its
// answer stops with kInterrupted. The handler must be installed without SA_RESTART.
void InterruptCalls();
bool CallsInterrupted();
void ClearInterrupt();

// Sends `request` to the server on `socket_path` and reads the whole answer.
// Returns false, with *error and *err set, if there is no complete answer
// within `timeout`. With `on_body` set, the body is passed on in pieces as it
// arrives (for streams) instead of being stored in response->body.
// A connection the server refused before reading the request (503 with Retry-After: too many
// connections, or no descriptor left) is tried again, after 50 ms, then twice as long each
// time up to 1 s, for at most kRefusedRetryWindow and within `timeout`; the last 503 is the
// answer if the server still refuses (its body is never passed to `on_body`).
inline constexpr std::chrono::seconds kRefusedRetryWindow{30};

bool HttpCall(const std::string& socket_path, const HttpClientRequest& request,
              std::chrono::milliseconds timeout, HttpClientResponse* response, HttpCallError* error,
              std::string* err, const std::function<void(std::string_view)>& on_body = nullptr);

}  // namespace chainctl::cli
