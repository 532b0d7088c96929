// One client connection of chaind's HTTP server: reads requests, hands them to the handler
// one at a time and writes the responses in order. Internal to HttpServer
// (daemon/http/server.h); loop thread only.
//
// Ownership. The connection owns two libuv handles, `pipe_` and `timer_`. HttpServer holds
// the only lasting shared_ptr to it, from accept until both handles' close callbacks have
// run (libuv's rule: a handle's memory is reclaimed only then), when it calls
// HttpServerContext::on_closed and the server drops it. Responders and HttpBodyStreams hold
// weak_ptrs, so an answer that comes late finds the connection gone, not freed memory.
//
// States (state_):
//   kReading    waiting for or reading a request. The timer is the idle timeout until the
//               request's first byte, then the request timeout until its last byte.
//   kHandling   the handler has request number `seq_`; no timer. Bytes that arrive are kept
//               in `input_` unparsed (reading stops while it holds more than kMaxBuffered).
//   kStreaming  the response head of `seq_` is sent and `stream_` sends the body; no timer.
// Ending: `close_after_writes_`: the last response is queued, uv_close follows its writes
// (the idle timeout bounds the wait); `closing_`: uv_close was called, only the close
// callbacks remain.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "daemon/http/body_stream.h"
#include "daemon/http/request_parser.h"
#include "daemon/http/types.h"
#include "daemon/http/wire.h"

namespace chainctl::daemon {

class HttpConnection;

// Figures of an HttpServer (HttpServer::Stats).
struct HttpServerStats {
  size_t open_connections = 0;     // served now (not counting refused ones being closed)
  size_t requests_in_flight = 0;   // handed to the handler and not answered yet
  uint64_t connections = 0;        // accepted since start, refused ones included
  uint64_t requests = 0;           // handed to the handler since start
  uint64_t refused_peer = 0;       // 403: a client of another uid
  uint64_t refused_busy = 0;       // 503: over HttpLimits::max_connections
  uint64_t refused_no_fd = 0;      // 503: no file descriptor left (EMFILE, ENFILE)
  uint64_t rejected_requests = 0;  // 400, 405, 413, 431 sent by the server itself
  uint64_t request_timeouts = 0;   // 408
  uint64_t idle_closes = 0;        // closed by the idle timeout
};

// What HttpServer shares with its connections. Owned by the server, which outlives them.
struct HttpServerContext {
  uv_loop_t* loop = nullptr;
  HttpLimits limits;
  Handler handler;
  HttpServerStats stats;
  std::thread::id loop_thread;
  bool shutting_down = false;
  // Called once per connection, from the last close callback of its handles.
  std::function<void(HttpConnection*)> on_closed;
  // Every read lands here: libuv calls alloc and read back to back, one stream at a time.
  std::array<char, 64 * 1024> read_buffer;
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  // Bytes kept unparsed while a request is being handled, before reading pauses.
  static constexpr size_t kMaxBuffered = 64 * 1024;

  // Initialises the handles (cannot fail on Unix); the caller opens the accepted socket in
  // stream() (uv_pipe_open).
  static std::shared_ptr<HttpConnection> Create(HttpServerContext* context);
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }
  int fd() const;

  // Serves requests from a client whose credentials were checked. Counts as open.
  // With `refusal`, each request is still read (within the limits) but answered with
  // `refusal` and the connection closed: a client sends before it reads, so an answer
  // given at accept would meet a closed socket instead of being read.
  void Serve(uid_t peer_uid, pid_t peer_pid, std::optional<HttpResponse> refusal = std::nullopt);
  // Sends `response` (an error) without reading anything, then closes.
  void Refuse(const HttpResponse& response);
  // Server shutdown: close when idle, after the answer when handling, now when streaming.
  void Drain();
  // Closes both handles now; pending writes are cancelled. Idempotent.
  void Close();

  // Answers request `seq` if `connection` still waits for it; else aborts response.stream.
  static void RespondTo(const std::weak_ptr<HttpConnection>& connection, uint64_t seq,
                        HttpResponse response);
  // For the HttpBodyStream of request `seq`: false if it can take no more.
  bool WriteChunk(uint64_t seq, std::string data);
  void EndStream(uint64_t seq);
  size_t unsent_bytes() const;

 private:
  enum class State { kReading, kHandling, kStreaming };
  // What the one timer is counting: idle_timeout_ms while no request has begun (it also
  // bounds how long the last response takes to leave), request_timeout_ms from a request's
  // first byte, idle_timeout_ms again for the last writes before closing.
  enum class TimerRole { kNone, kIdle, kRequest, kFlush };
  struct WriteRequest;

  explicit HttpConnection(HttpServerContext* context);

  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnTimer(uv_timer_t* timer);
  static void OnHandleClosed(uv_handle_t* handle);

  // Reading and parsing (http_connection.cc).
  void Read(ssize_t nread, const uv_buf_t* buf);
  void ProcessInput();
  void Dispatch(HttpRequest request);
  void AfterInput();
  void UpdateReading();
  void TimerFired();
  void StartTimer(TimerRole role, uint64_t timeout_ms);
  void StopTimer();

  // Writing (http_connection_write.cc).
  // How one response goes on the wire, from its request and itself.
  struct Framing {
    BodyFraming body = BodyFraming::kLength;
    ConnectionHeader connection = ConnectionHeader::kNone;
    bool close = false;      // close once it is written
    bool send_body = false;  // not HEAD, nor a status without a body
  };
  // False if the connection no longer waits for request `seq`.
  bool Respond(uint64_t seq, HttpResponse response);
  Framing FramingFor(const HttpResponse& response, bool streamed) const;
  void StartStream(std::string head, std::shared_ptr<HttpBodyStream> stream,
                   const Framing& framing);
  void FinishResponse(bool close);
  void SendErrorAndClose(const HttpResponse& response);
  void CloseAfterWrites();
  void Write(std::string data);
  void WriteDone(int status);

  HttpServerContext* context_;
  uv_pipe_t pipe_;
  uv_timer_t timer_;
  int handles_open_ = 2;
  HttpRequestParser parser_;

  State state_ = State::kReading;
  TimerRole timer_role_ = TimerRole::kNone;
  bool served_ = false;  // counted in stats.open_connections
  bool reading_ = false;
  bool eof_ = false;  // the client sent EOF (it may still read our answers)
  bool in_process_input_ = false;
  bool close_after_writes_ = false;
  bool closing_ = false;
  bool chunked_ = false;  // of the stream being sent
  bool close_after_stream_ = false;
  std::string input_;  // read and not parsed yet
  uint64_t seq_ = 0;   // number of the last request handed to the handler
  size_t writes_pending_ = 0;
  uid_t peer_uid_ = 0;
  std::optional<HttpResponse> refusal_;  // see Serve
  pid_t peer_pid_ = 0;
  std::shared_ptr<HttpBodyStream> stream_;  // while kStreaming
};

}  // namespace chainctl::daemon
