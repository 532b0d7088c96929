#include "daemon/http/connection.h"

#include <cassert>
#include <exception>
#include <utility>

#include "daemon/http/wire.h"

namespace chainctl::daemon {
namespace {

HttpConnection* ConnectionOf(uv_handle_t* handle) {
  return static_cast<HttpConnection*>(handle->data);
}

// Shared by the copies of one Responder: answers once, and answers 500 if the last copy
// goes away on the loop thread unanswered.
struct ResponderState {
  std::weak_ptr<HttpConnection> connection;
  uint64_t seq = 0;
  std::thread::id loop_thread;
  bool answered = false;

  ResponderState(std::weak_ptr<HttpConnection> c, uint64_t s, std::thread::id t)
      : connection(std::move(c)), seq(s), loop_thread(t) {}
  ResponderState(const ResponderState&) = delete;
  ResponderState& operator=(const ResponderState&) = delete;
  ~ResponderState() {
    if (answered || std::this_thread::get_id() != loop_thread) return;
    HttpConnection::RespondTo(
        connection, seq,
        JsonError(500, "internal_error", "the request was dropped without an answer"));
  }

  void Answer(HttpResponse response) {
    assert(std::this_thread::get_id() == loop_thread && "Responder called off the loop");
    if (std::exchange(answered, true)) return;
    HttpConnection::RespondTo(connection, seq, std::move(response));
  }
};

}  // namespace

HttpConnection::HttpConnection(HttpServerContext* context)
    : context_(context), parser_(&context->limits) {}

std::shared_ptr<HttpConnection> HttpConnection::Create(HttpServerContext* context) {
  std::shared_ptr<HttpConnection> connection(new HttpConnection(context));
  // Both cannot fail on Unix (libuv 1.44 returns 0 unconditionally).
  uv_pipe_init(context->loop, &connection->pipe_, 0);
  uv_timer_init(context->loop, &connection->timer_);
  connection->pipe_.data = connection.get();
  connection->timer_.data = connection.get();
  return connection;
}

int HttpConnection::fd() const {
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<const uv_handle_t*>(&pipe_), &fd);
  return fd;
}

void HttpConnection::Serve(uid_t peer_uid, pid_t peer_pid, std::optional<HttpResponse> refusal) {
  served_ = true;
  refusal_ = std::move(refusal);
  if (refusal_) refusal_->headers.emplace_back("Connection", "close");
  ++context_->stats.open_connections;
  peer_uid_ = peer_uid;
  peer_pid_ = peer_pid;
  StartTimer(TimerRole::kIdle, context_->limits.idle_timeout_ms);
  UpdateReading();
}

void HttpConnection::Drain() {
  if (closing_) return;
  switch (state_) {
    case State::kReading:  // a request not received completely is dropped
      CloseAfterWrites();
      break;
    case State::kHandling:  // Respond closes after the answer (context_->shutting_down)
      break;
    case State::kStreaming:  // a stream may never end by itself: cut it
      Close();
      break;
  }
}

void HttpConnection::Close() {
  if (closing_) return;
  closing_ = true;
  if (served_) --context_->stats.open_connections;
  if (state_ == State::kHandling) --context_->stats.requests_in_flight;
  std::shared_ptr<HttpBodyStream> stream = std::move(stream_);
  StopTimer();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), OnHandleClosed);  // cancels pending writes
  if (stream) stream->Abort();
}

void HttpConnection::OnHandleClosed(uv_handle_t* handle) {
  HttpConnection* connection = ConnectionOf(handle);
  if (--connection->handles_open_ == 0) {
    connection->context_->on_closed(connection);  // may destroy the connection
  }
}

void HttpConnection::OnAlloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
  auto& buffer = ConnectionOf(handle)->context_->read_buffer;
  buf->base = buffer.data();
  buf->len = buffer.size();
}

void HttpConnection::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  ConnectionOf(reinterpret_cast<uv_handle_t*>(stream))->Read(nread, buf);
}

void HttpConnection::Read(ssize_t nread, const uv_buf_t* buf) {
  if (closing_ || nread == 0) return;
  if (nread > 0) {
    input_.append(buf->base, static_cast<size_t>(nread));
    ProcessInput();
  } else if (nread == UV_EOF) {
    eof_ = true;
    reading_ = false;  // libuv stops reading at EOF
    AfterInput();
  } else {
    Close();  // ECONNRESET and the like: nobody to answer
  }
}

// Parses buffered input while the connection waits for a request. Re-entered from a
// synchronous answer, it returns at once and the outer call goes on.
void HttpConnection::ProcessInput() {
  if (in_process_input_) return;
  in_process_input_ = true;
  while (!closing_ && !close_after_writes_ && state_ == State::kReading && !input_.empty()) {
    size_t used = 0;
    HttpRequestParser::Result result = parser_.Parse(input_, &used);
    input_.erase(0, used);
    if (result == HttpRequestParser::Result::kError) {
      ++context_->stats.rejected_requests;
      SendErrorAndClose(parser_.error());
    } else if (result == HttpRequestParser::Result::kRequest) {
      Dispatch(parser_.TakeRequest());
    } else {
      if (parser_.TakeExpectContinue()) Write(std::string(kContinueResponse));
      if (parser_.in_request() && timer_role_ != TimerRole::kRequest) {
        StartTimer(TimerRole::kRequest, context_->limits.request_timeout_ms);
      }
    }
  }
  in_process_input_ = false;
  AfterInput();
}

void HttpConnection::Dispatch(HttpRequest request) {
  state_ = State::kHandling;
  ++seq_;
  StopTimer();
  ++context_->stats.requests;
  ++context_->stats.requests_in_flight;
  request.peer_uid = peer_uid_;
  request.peer_pid = peer_pid_;
  if (refusal_) {
    Respond(seq_, *refusal_);
    return;
  }
  auto state = std::make_shared<ResponderState>(weak_from_this(), seq_, context_->loop_thread);
  try {
    context_->handler(std::move(request),
                      [state](HttpResponse response) { state->Answer(std::move(response)); });
  } catch (const std::exception& e) {
    if (!std::exchange(state->answered, true)) {
      Respond(state->seq,
              JsonError(500, "internal_error", std::string("the handler failed: ") + e.what()));
    }
  } catch (...) {
    if (!std::exchange(state->answered, true)) {
      Respond(state->seq, JsonError(500, "internal_error", "the handler failed"));
    }
  }
}

void HttpConnection::AfterInput() {
  if (closing_ || close_after_writes_) return;
  if (eof_ && state_ == State::kReading) {
    if (parser_.in_request()) {
      Close();  // a request cut short: the client cannot want an answer
    } else {
      CloseAfterWrites();  // everything it sent is answered
    }
    return;
  }
  if (eof_ && state_ == State::kStreaming) {
    Close();  // the reader of the stream has gone
    return;
  }
  UpdateReading();
}

// Reads while a request may come, and while buffering for a busy connection stays small.
void HttpConnection::UpdateReading() {
  bool want = !closing_ && !close_after_writes_ && !eof_ &&
              (state_ == State::kReading || input_.size() < kMaxBuffered);
  if (want && !reading_) {
    if (uv_read_start(stream(), OnAlloc, OnRead) < 0) {
      Close();
      return;
    }
    reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(stream());
    reading_ = false;
  }
}

void HttpConnection::StartTimer(TimerRole role, uint64_t timeout_ms) {
  if (timeout_ms == 0) {  // that timeout is disabled
    StopTimer();
    return;
  }
  timer_role_ = role;
  uv_timer_start(&timer_, OnTimer, timeout_ms, 0);
}

void HttpConnection::StopTimer() {
  timer_role_ = TimerRole::kNone;
  uv_timer_stop(&timer_);
}

void HttpConnection::OnTimer(uv_timer_t* timer) {
  ConnectionOf(reinterpret_cast<uv_handle_t*>(timer))->TimerFired();
}

void HttpConnection::TimerFired() {
  TimerRole role = std::exchange(timer_role_, TimerRole::kNone);
  if (role == TimerRole::kRequest && state_ == State::kReading) {
    ++context_->stats.request_timeouts;
    uint64_t timeout = context_->limits.request_timeout_ms;
    SendErrorAndClose(JsonError(
        408, "request_timeout",
        "the request did not arrive within " + std::to_string(timeout) + " ms of its first byte",
        {{"timeout_ms", timeout}}));
    return;
  }
  if (role == TimerRole::kIdle) ++context_->stats.idle_closes;
  Close();
}

}  // namespace chainctl::daemon
