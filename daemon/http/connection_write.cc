// The writing half of HttpConnection: responses, streamed bodies, and closing after them.
#include <utility>

#include "daemon/http/connection.h"
#include "daemon/http/wire.h"

namespace chainctl::daemon {
namespace {

// "Connection: close" among the handler's headers.
bool AsksToClose(const HttpResponse& response) {
  for (const auto& [name, value] : response.headers) {
    if (EqualsIgnoringAsciiCase(name, "connection") && EqualsIgnoringAsciiCase(value, "close")) {
      return true;
    }
  }
  return false;
}

}  // namespace

// One uv_write in flight; owned by libuv until OnWrite, which deletes it.
struct HttpConnection::WriteRequest {
  uv_write_t req;
  std::string data;
  HttpConnection* connection;
};

void HttpConnection::RespondTo(const std::weak_ptr<HttpConnection>& connection, uint64_t seq,
                               HttpResponse response) {
  std::shared_ptr<HttpBodyStream> stream = response.stream;
  std::shared_ptr<HttpConnection> locked = connection.lock();
  if ((!locked || !locked->Respond(seq, std::move(response))) && stream) stream->Abort();
}

bool HttpConnection::Respond(uint64_t seq, HttpResponse response) {
  if (closing_ || state_ != State::kHandling || seq != seq_) return false;
  --context_->stats.requests_in_flight;
  state_ = State::kReading;  // this answer is no longer awaited, whatever follows
  std::string err;
  if (!CheckResponse(response, &err)) {
    if (response.stream) response.stream->Abort();
    response = JsonError(500, "internal_error", "the handler's response is invalid: " + err);
  }
  std::shared_ptr<HttpBodyStream> stream = std::move(response.stream);
  Framing framing = FramingFor(response, stream != nullptr);
  std::string out = ResponseHead(response, framing.body, framing.connection);
  if (framing.send_body && !response.body.empty()) {
    out += framing.body == BodyFraming::kChunked ? Chunk(response.body) : response.body;
  }
  if (stream && framing.send_body) {
    StartStream(std::move(out), std::move(stream), framing);
    return true;
  }
  Write(std::move(out));
  FinishResponse(framing.close);
  if (stream) stream->Abort();  // HEAD, or a status without a body
  return true;
}

HttpConnection::Framing HttpConnection::FramingFor(const HttpResponse& response,
                                                   bool streamed) const {
  Framing framing;
  framing.body = !streamed            ? BodyFraming::kLength
                 : parser_.http_1_0() ? BodyFraming::kUntilClose  // HTTP/1.0 has no chunks
                                      : BodyFraming::kChunked;
  framing.close = !parser_.keep_alive() || context_->shutting_down || AsksToClose(response) ||
                  framing.body == BodyFraming::kUntilClose;
  framing.connection = framing.close        ? ConnectionHeader::kClose
                       : parser_.http_1_0() ? ConnectionHeader::kKeepAlive
                                            : ConnectionHeader::kNone;
  framing.send_body = !parser_.head() && StatusHasBody(response.status);
  return framing;
}

// Sends `head` (with the first chunk, if any) and hands the connection to `stream`.
void HttpConnection::StartStream(std::string head, std::shared_ptr<HttpBodyStream> stream,
                                 const Framing& framing) {
  state_ = State::kStreaming;
  stream_ = stream;
  chunked_ = framing.body == BodyFraming::kChunked;
  close_after_stream_ = framing.close;
  Write(std::move(head));
  stream->Attach(weak_from_this(), seq_);         // may write, and even end the stream, at once
  if (state_ == State::kStreaming) AfterInput();  // read on, to see the client leave
}

bool HttpConnection::WriteChunk(uint64_t seq, std::string data) {
  if (closing_ || state_ != State::kStreaming || seq != seq_) return false;
  Write(chunked_ ? Chunk(data) : std::move(data));
  return !closing_;
}

void HttpConnection::EndStream(uint64_t seq) {
  if (closing_ || state_ != State::kStreaming || seq != seq_) return;
  if (chunked_) Write(std::string(kLastChunk));
  stream_.reset();
  FinishResponse(close_after_stream_);
}

size_t HttpConnection::unsent_bytes() const {
  return uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&pipe_));
}

// The response of the current request is queued: close, or go on with the next request.
void HttpConnection::FinishResponse(bool close) {
  state_ = State::kReading;
  if (closing_) return;
  if (close || context_->shutting_down) {
    CloseAfterWrites();
    return;
  }
  // Until the next request begins; also bounds how long the response may take to leave.
  StartTimer(TimerRole::kIdle, context_->limits.idle_timeout_ms);
  ProcessInput();
}

void HttpConnection::Refuse(const HttpResponse& response) { SendErrorAndClose(response); }

// Only before or while reading a request: the error answers it.
void HttpConnection::SendErrorAndClose(const HttpResponse& response) {
  Write(ResponseHead(response, BodyFraming::kLength, ConnectionHeader::kClose) + response.body);
  CloseAfterWrites();
}

void HttpConnection::CloseAfterWrites() {
  if (closing_) return;
  close_after_writes_ = true;
  UpdateReading();  // stops: the rest of the input is not read
  if (writes_pending_ == 0) {
    Close();
    return;
  }
  // A client that does not read must not keep the connection forever.
  StartTimer(TimerRole::kFlush, context_->limits.idle_timeout_ms);
}

void HttpConnection::Write(std::string data) {
  if (closing_ || data.empty()) return;
  auto* request = new WriteRequest{uv_write_t{}, std::move(data), this};
  request->req.data = request;
  uv_buf_t buf;
  buf.base = request->data.data();
  buf.len = request->data.size();
  int rc = uv_write(&request->req, stream(), &buf, 1, OnWrite);
  if (rc < 0) {  // the callback will not run
    delete request;
    Close();
    return;
  }
  ++writes_pending_;
}

void HttpConnection::OnWrite(uv_write_t* req, int status) {
  auto* request = static_cast<WriteRequest*>(req->data);
  HttpConnection* connection = request->connection;
  delete request;
  connection->WriteDone(status);
}

void HttpConnection::WriteDone(int status) {
  --writes_pending_;
  if (status < 0) {  // EPIPE: the client has gone; ECANCELED: we are closing
    Close();
  } else if (close_after_writes_ && writes_pending_ == 0) {
    Close();
  } else if (writes_pending_ == 0 && state_ == State::kStreaming && stream_) {
    std::shared_ptr<HttpBodyStream> stream = stream_;  // EndStream, from the producer, resets it
    stream->Drained();
  }
}

}  // namespace chainctl::daemon
