#include "cli/http_client.h"

#include <http_parser.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <thread>

#include "common/unique_fd.h"

namespace chainctl::cli {
namespace {

using Clock = std::chrono::steady_clock;

using Fd = UniqueFd;

volatile sig_atomic_t interrupted = 0;

// Milliseconds left until `deadline`, from 0 to INT_MAX.
int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
}

// Waits for `events` on fd; false on timeout or error (errno set).
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, MsLeft(deadline));
    if (n > 0) return true;
    if (n == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR || interrupted) return false;
  }
}

std::string Serialize(const HttpClientRequest& r) {
  std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: localhost\r\n";
  out += "Connection: close\r\nUser-Agent: chainctl\r\nAccept: application/json\r\n";
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
    if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  return out + "\r\n" + r.body;
}

// State shared with http_parser's callbacks.
struct ParseState {
  HttpClientResponse* response = nullptr;
  const std::function<void(std::string_view)>* on_body = nullptr;
  std::string header_name;
  bool header_value_next = false;
  bool complete = false;
};

int OnHeaderField(http_parser* p, const char* at, size_t len) {
  auto* s = static_cast<ParseState*>(p->data);
  if (s->header_value_next) s->header_name.clear();
  s->header_value_next = false;
  for (size_t i = 0; i < len; ++i) {
    s->header_name += static_cast<char>(std::tolower(static_cast<unsigned char>(at[i])));
  }
  return 0;
}

int OnHeaderValue(http_parser* p, const char* at, size_t len) {
  auto* s = static_cast<ParseState*>(p->data);
  if (!s->header_value_next) s->response->headers.emplace_back(s->header_name, "");
  s->header_value_next = true;
  s->response->headers.back().second.append(at, len);
  return 0;
}

// A 503 refusal of the connection (HttpCall retries it) is kept, not streamed.
int OnBody(http_parser* p, const char* at, size_t len) {
  auto* s = static_cast<ParseState*>(p->data);
  if (*s->on_body && p->status_code != 503) {
    (*s->on_body)(std::string_view(at, len));
  } else {
    s->response->body.append(at, len);
  }
  return 0;
}

int OnComplete(http_parser* p) {
  auto* s = static_cast<ParseState*>(p->data);
  s->response->status = static_cast<int>(p->status_code);
  s->complete = true;
  return 0;
}

// The callbacks above, which fill the ParseState in http_parser::data.
http_parser_settings ParserSettings() {
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_header_field = OnHeaderField;
  settings.on_header_value = OnHeaderValue;
  settings.on_body = OnBody;
  settings.on_message_complete = OnComplete;
  return settings;
}

bool Fail(HttpCallError kind, std::string message, HttpCallError* error, std::string* err) {
  *error = kind;
  *err = std::move(message);
  return false;
}

}  // namespace

void InterruptCalls() { interrupted = 1; }
bool CallsInterrupted() { return interrupted != 0; }
void ClearInterrupt() { interrupted = 0; }

namespace {

// Whether the server refused the connection before reading the request, asking to come back.
bool RefusedConnection(const HttpClientResponse& response) {
  if (response.status != 503) return false;
  return std::any_of(response.headers.begin(), response.headers.end(),
                     [](const auto& header) { return header.first == "retry-after"; });
}

// One try of HttpCall, until `deadline`.
bool HttpCallOnce(const std::string& socket_path, const HttpClientRequest& request,
                  Clock::time_point deadline, std::chrono::milliseconds timeout,
                  HttpClientResponse* response, HttpCallError* error, std::string* err,
                  const std::function<void(std::string_view)>& on_body);

}  // namespace

bool HttpCall(const std::string& socket_path, const HttpClientRequest& request,
              std::chrono::milliseconds timeout, HttpClientResponse* response, HttpCallError* error,
              std::string* err, const std::function<void(std::string_view)>& on_body) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + timeout;
  const Clock::time_point retry_until = std::min(deadline, start + kRefusedRetryWindow);
  auto pause = std::chrono::milliseconds(50);
  for (;;) {
    if (!HttpCallOnce(socket_path, request, deadline, timeout, response, error, err, on_body)) {
      return false;
    }
    if (!RefusedConnection(*response) || Clock::now() + pause >= retry_until || interrupted) {
      return true;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

namespace {

// Sends `bytes` on fd, until `deadline`. chaind may refuse a connection (503) and close it
// before reading the request: then the send fails (EPIPE) but its answer is there to read; that
// answer is the one reported. So that failure ends the send without failing the call: it is kept
// in *send_failure, which ReadResponse reports only if no answer comes.
bool SendRequest(int fd, const std::string& bytes, Clock::time_point deadline,
                 std::string* send_failure, HttpCallError* error, std::string* err) {
  for (size_t sent = 0; sent < bytes.size();) {
    if (!WaitFor(fd, POLLOUT, deadline)) {
      return Fail(errno == ETIMEDOUT ? HttpCallError::kTimeout : HttpCallError::kIo,
                  "sending to chaind: " + std::string(std::strerror(errno)), error, err);
    }
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      *send_failure = "sending to chaind: " + std::string(std::strerror(errno));
      return true;
    }
    if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return Fail(HttpCallError::kIo, "sending to chaind: " + std::string(std::strerror(errno)),
                  error, err);
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads the answer on fd into *response (its body passed to `on_body` instead, see OnBody)
// until it is complete, or fails at `deadline` (`timeout` is the call's, for the message), at
// InterruptCalls(), or when chaind closes the connection first. `send_failure` is
// SendRequest's: the failure reported if the connection ends with no answer at all.
bool ReadResponse(int fd, Clock::time_point deadline, std::chrono::milliseconds timeout,
                  const std::string& send_failure,
                  const std::function<void(std::string_view)>& on_body,
                  HttpClientResponse* response, HttpCallError* error, std::string* err) {
  *response = HttpClientResponse{};
  ParseState state;
  state.response = response;
  state.on_body = &on_body;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &state;
  const http_parser_settings settings = ParserSettings();
  char buffer[65536];
  size_t received = 0;
  while (!state.complete) {
    if (!WaitFor(fd, POLLIN, deadline)) {
      if (interrupted) return Fail(HttpCallError::kInterrupted, "interrupted", error, err);
      return Fail(errno == ETIMEDOUT ? HttpCallError::kTimeout : HttpCallError::kIo,
                  "no answer from chaind within " + std::to_string(timeout.count()) + " ms", error,
                  err);
    }
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR && !interrupted) continue;
    if (n <= 0 && !send_failure.empty() && received == 0) {
      return Fail(HttpCallError::kIo, send_failure, error, err);  // no answer either
    }
    if (n > 0) received += static_cast<size_t>(n);
    if (n < 0) {
      return Fail(HttpCallError::kIo, "reading from chaind: " + std::string(std::strerror(errno)),
                  error, err);
    }
    size_t len = static_cast<size_t>(n);
    size_t parsed = http_parser_execute(&parser, &settings, buffer, len);  // len 0: EOF
    if (parser.http_errno != HPE_OK || parsed != len) {
      return Fail(HttpCallError::kProtocol,
                  std::string("bad answer from chaind: ") +
                      http_errno_description(static_cast<http_errno>(parser.http_errno)),
                  error, err);
    }
    if (n == 0 && !state.complete) {
      return Fail(HttpCallError::kProtocol, "chaind closed the connection before answering", error,
                  err);
    }
  }
  return true;
}

bool HttpCallOnce(const std::string& socket_path, const HttpClientRequest& request,
                  Clock::time_point deadline, std::chrono::milliseconds timeout,
                  HttpClientResponse* response, HttpCallError* error, std::string* err,
                  const std::function<void(std::string_view)>& on_body) {
  *error = HttpCallError::kNone;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Fail(HttpCallError::kIo, "socket path is too long: " + socket_path, error, err);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Fail(HttpCallError::kIo, std::strerror(errno), error, err);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    bool absent = errno == ENOENT || errno == ECONNREFUSED;
    return Fail(absent ? HttpCallError::kNoDaemon : HttpCallError::kIo,
                "cannot connect to " + socket_path + ": " + std::strerror(errno), error, err);
  }
  std::string send_failure;
  return SendRequest(fd.get(), Serialize(request), deadline, &send_failure, error, err) &&
         ReadResponse(fd.get(), deadline, timeout, send_failure, on_body, response, error, err);
}

}  // namespace
}  // namespace chainctl::cli
