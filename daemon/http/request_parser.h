// Incremental HTTP/1.1 request parser: libhttp-parser (v2.9) plus the server's limits. It
// turns bytes into HttpRequests one at a time and does no I/O, so it is tested on its own.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "daemon/http/types.h"

namespace chainctl::daemon {

class HttpRequestParser {
 public:
  enum class Result {
    kNeedMore,  // every byte given was used; the request (if begun) is not complete
    kRequest,   // a request is complete: TakeRequest(); the parser waits at the next one
    kError,     // the input is refused: error() is the response to send before closing
  };

  // `limits` must outlive the parser.
  explicit HttpRequestParser(const HttpLimits* limits);
  HttpRequestParser(const HttpRequestParser&) = delete;  // libhttp-parser points back at it
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;

  // Parses from the front of `data` and sets *consumed to the bytes used. It stops after the
  // first complete request, so pipelined requests are returned one call each. After kError
  // every further call returns kError and consumes nothing.
  Result Parse(std::string_view data, size_t* consumed);

  // The request completed by the last Parse (peer_uid/peer_pid are left 0).
  HttpRequest TakeRequest();
  // Of the request last completed: may the connection serve another one after it?
  bool keep_alive() const { return keep_alive_; }
  // Of the request last completed: HTTP/1.0 (so keep-alive must be announced, and a
  // streamed body cannot be chunked)?
  bool http_1_0() const { return http_1_0_; }
  // Of the request last completed: HEAD (the response gets no body)?
  bool head() const { return head_; }

  // True while a request has begun and is not complete.
  bool in_request() const { return in_request_; }
  // True once for a request whose headers asked "Expect: 100-continue" and are accepted;
  // the caller sends "100 Continue" if the body has not arrived yet.
  bool TakeExpectContinue();

  // Valid after kError: the JSON error response (400, 413 or 431).
  const HttpResponse& error() const { return error_; }

 private:
  static int OnMessageBegin(http_parser* p);
  static int OnUrl(http_parser* p, const char* at, size_t length);
  static int OnHeaderField(http_parser* p, const char* at, size_t length);
  static int OnHeaderValue(http_parser* p, const char* at, size_t length);
  static int OnHeadersComplete(http_parser* p);
  static int OnBody(http_parser* p, const char* at, size_t length);
  static int OnMessageComplete(http_parser* p);

  int HeadersComplete();
  int MessageComplete();
  bool SplitTarget();
  void Fail(HttpResponse response);
  void FailFromParser();
  void FailHeadersTooLarge();
  // Resets what belongs to one request, after TakeRequest or at the start.
  void ResetMessage();

  static const http_parser_settings kSettings;

  const HttpLimits* limits_;
  http_parser parser_;
  bool failed_ = false;
  HttpResponse error_;

  // The request being parsed.
  HttpRequest request_;
  std::string url_;
  bool in_request_ = false;
  bool headers_done_ = false;
  bool last_was_value_ = true;  // the next header-field callback starts a new header
  size_t head_bytes_ = 0;       // bytes parsed for the request line and headers (<= limit)
  bool expect_continue_ = false;
  bool keep_alive_ = false;
  bool http_1_0_ = false;
  bool head_ = false;
};

}  // namespace chainctl::daemon
