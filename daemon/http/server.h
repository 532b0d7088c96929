// chaind's HTTP/1.1 server on Unix sockets (DESIGN.md §6): keep-alive connections, requests
// of one connection answered in order, limits on sizes, times and connections, and clients
// of other users refused. The API layer gives it a Handler and answers through Responders
// (daemon/http/types.h); streamed bodies go through HttpBodyStream (daemon/http/body_stream.h).
//
// Threads: one libuv loop. Every member function is called on the loop's thread (Listen and
// ListenFd may also be called before the loop runs, on the thread that will run it or before
// that thread starts); Handlers and Responders run there too.
//
// Ownership: the server owns its listening sockets (polled, accepted here) and its connections
// (HttpConnection, in daemon/http/connection.h), each a libuv handle owner freed only after its
// close callback. Hence the lifetime rule: a server that has listened may be destroyed only after
// the callback of Shutdown has run (it aborts otherwise); then no handle of it is left on the loop,
// and uv_loop_close succeeds.
//
// Errors the server answers by itself, as JsonError bodies, closing the connection after them:
//   400 malformed_request      not HTTP/1.x, or a target that is not a URL
//   403 forbidden              a client of another uid (SO_PEERCRED), to its first request
//   405 method_not_allowed     CONNECT
//   408 request_timeout        HttpLimits::request_timeout_ms after the request's first byte
//   413 body_too_large         HttpLimits::max_body_bytes; the rest of the body is not read
//   431 headers_too_large      HttpLimits::max_header_bytes
//   503 too_many_connections   HttpLimits::max_connections, before any request
//   503 out_of_file_descriptors the process has no descriptor left for the connection: one
//                              kept in reserve is freed to accept it, answer and close it
// (both 503s have Retry-After: 1: the request was not read, so sending it again is safe)
// and 500 internal_error, keeping the connection, for a handler that throws, drops its
// Responder on the loop thread, or answers with a response CheckResponse refuses.
//
// Writes to a client that has gone raise SIGPIPE: the process must ignore SIGPIPE.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/http/body_stream.h"
#include "daemon/http/connection.h"
#include "daemon/http/types.h"

namespace chainctl::daemon {

class HttpServer {
 public:
  using Stats = HttpServerStats;

  // `loop` must outlive the server.
  HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Makes the socket file `path` with mode 0600 (set on the socket before bind, so it is
  // never more open) and serves it. The directory is the caller's to make; a file already at
  // `path` is an error (UV_EADDRINUSE): the caller removes a stale socket first. Shutdown
  // removes the file if it is still the one made here. Returns 0 or a negative errno.
  int Listen(const std::string& path);
  // Serves `fd`, a listening AF_UNIX stream socket (systemd socket activation). The server
  // owns fd from this call on: it is closed on failure and by Shutdown. Returns 0 or a
  // negative errno (UV_ENOTSOCK, UV_EINVAL for a socket of another kind or not listening).
  int ListenFd(int fd);

  // Stops accepting, closes idle connections and those still receiving a request, lets the
  // requests in flight be answered (streamed bodies are cut), closes every handle and then
  // calls `done` on the loop thread. If nothing is open, `done` runs before Shutdown returns.
  // A second call only replaces `done`.
  void Shutdown(std::function<void()> done);

  Stats stats() const { return context_.stats; }

 private:
  struct Listener;

  static void OnReadable(uv_poll_t* poll, int status, int events);
  static void OnListenerClosed(uv_handle_t* handle);
  int Adopt(int fd, std::string path);
  void AcceptAll(Listener* listener, int status);
  bool Shed(Listener* listener);
  void PauseAccepting(const std::string& why);
  void CloseResumeTimer();
  bool LogDue();
  void Accept(int fd);
  void CloseListener(Listener* listener);
  void ConnectionClosed(HttpConnection* connection);
  void MaybeFinishShutdown();

  HttpServerContext context_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // each until its close callback
  std::unordered_map<HttpConnection*, std::shared_ptr<HttpConnection>> connections_;
  std::function<void()> shutdown_done_;
  // Kept open so that, out of descriptors, one can be freed to accept a client and answer it
  // 503 (Shed); -1 while it is lent out or could not be opened.
  int reserve_fd_ = -1;
  uint64_t warned_ms_ = 0;        // when Shed or PauseAccepting last logged (LogDue)
  uv_timer_t* resume_ = nullptr;  // while accepting is paused (PauseAccepting)
};

}  // namespace chainctl::daemon
