// A response body sent while it is produced (the NDJSON events of a run, say), with
// Transfer-Encoding: chunked. Loop thread only.
//
// Ownership: the handler makes one with std::make_shared, keeps a reference to write to it,
// and puts one in HttpResponse::stream. The connection holds a reference while it sends the
// stream; the stream refers back to the connection weakly, so either may go first.
//
//   auto events = std::make_shared<HttpBodyStream>();
//   events->SetOnAbort([sub] { sub->Cancel(); });  // the client left or the server stops
//   respond(HttpResponse{.content_type = "application/x-ndjson", .stream = events});
//   ... events->Write(line + "\n"); ... events->End();
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chainctl::daemon {

class HttpConnection;

class HttpBodyStream {
 public:
  HttpBodyStream() = default;
  HttpBodyStream(const HttpBodyStream&) = delete;
  HttpBodyStream& operator=(const HttpBodyStream&) = delete;

  // Sends `data` as one chunk (nothing if empty). Data written before the response is sent
  // waits in the stream. Returns false, and drops `data`, once closed().
  bool Write(std::string data);
  // Ends the body: the last chunk is sent and the connection goes on with its next request.
  void End();
  // True after End(), and once the stream was aborted: the client went away, a write
  // failed, the server shuts down (the body is cut without its last chunk, so the client
  // sees it incomplete), or the request was HEAD (no body is sent).
  bool closed() const { return closed_; }
  // Bytes written and not yet taken by the socket: a producer may wait while this is high.
  size_t unsent_bytes() const;
  // `on_abort` is called once, on the loop thread, when the stream is aborted (not when
  // End() closes it); it may call Write (which returns false) but must not destroy the
  // connection's server. Dropped after it runs or after End().
  void SetOnAbort(std::function<void()> on_abort);
  // `on_drained` is called on the loop thread each time the socket has taken everything written
  // so far, while the stream is open: a producer that writes one piece at a time (a file, say)
  // writes the next there, so that a client that does not read holds one piece of chaind's
  // memory, not the whole body. It may call Write and End. Dropped once the stream is closed.
  void SetOnDrained(std::function<void()> on_drained);

 private:
  friend class HttpConnection;
  // Called by the connection once the response head is queued: sends what waits.
  void Attach(std::weak_ptr<HttpConnection> connection, uint64_t request_seq);
  // Called by the connection when it can send no more of this stream.
  void Abort();
  // Called by the connection once its writes are all done.
  void Drained();

  std::weak_ptr<HttpConnection> connection_;
  uint64_t request_seq_ = 0;
  bool attached_ = false;
  bool ended_ = false;                // End() was called
  bool closed_ = false;               // ended or aborted
  std::vector<std::string> waiting_;  // written before Attach
  std::function<void()> on_abort_;
  std::function<void()> on_drained_;
};

}  // namespace chainctl::daemon
