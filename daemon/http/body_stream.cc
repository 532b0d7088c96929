#include "daemon/http/body_stream.h"

#include <utility>

#include "daemon/http/connection.h"

namespace chainctl::daemon {

bool HttpBodyStream::Write(std::string data) {
  if (closed_) return false;
  if (data.empty()) return true;
  if (!attached_) {
    waiting_.push_back(std::move(data));
    return true;
  }
  std::shared_ptr<HttpConnection> connection = connection_.lock();
  if (!connection || !connection->WriteChunk(request_seq_, std::move(data))) {
    Abort();
    return false;
  }
  return true;
}

void HttpBodyStream::End() {
  if (closed_) return;
  closed_ = true;
  ended_ = true;
  on_abort_ = nullptr;
  on_drained_ = nullptr;
  if (!attached_) return;  // Attach ends it after sending what waits
  if (std::shared_ptr<HttpConnection> connection = connection_.lock()) {
    connection->EndStream(request_seq_);
  }
}

size_t HttpBodyStream::unsent_bytes() const {
  if (attached_) {
    std::shared_ptr<HttpConnection> connection = connection_.lock();
    return connection ? connection->unsent_bytes() : 0;
  }
  size_t bytes = 0;
  for (const std::string& data : waiting_) bytes += data.size();
  return bytes;
}

void HttpBodyStream::SetOnAbort(std::function<void()> on_abort) {
  if (!closed_) on_abort_ = std::move(on_abort);
}

void HttpBodyStream::SetOnDrained(std::function<void()> on_drained) {
  if (!closed_) on_drained_ = std::move(on_drained);
}

void HttpBodyStream::Drained() {
  if (closed_ || !on_drained_) return;
  std::function<void()> on_drained = on_drained_;  // alive while it runs, even if it ends us
  on_drained();
}

void HttpBodyStream::Attach(std::weak_ptr<HttpConnection> connection, uint64_t request_seq) {
  connection_ = std::move(connection);
  request_seq_ = request_seq;
  attached_ = true;
  std::vector<std::string> waiting = std::move(waiting_);
  waiting_.clear();
  std::shared_ptr<HttpConnection> locked = connection_.lock();
  for (std::string& data : waiting) {
    if (!locked || !locked->WriteChunk(request_seq_, std::move(data))) {
      Abort();
      return;
    }
  }
  if (ended_ && locked) locked->EndStream(request_seq_);
}

void HttpBodyStream::Abort() {
  if (closed_) return;
  closed_ = true;
  waiting_.clear();
  on_drained_ = nullptr;
  std::function<void()> on_abort = std::move(on_abort_);
  on_abort_ = nullptr;
  if (on_abort) on_abort();
}

}  // namespace chainctl::daemon
