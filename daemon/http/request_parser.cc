#include "daemon/http/request_parser.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "daemon/http/wire.h"

namespace chainctl::daemon {
namespace {

HttpRequestParser* Self(http_parser* p) { return static_cast<HttpRequestParser*>(p->data); }

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

void TrimWhitespace(std::string* s) {
  size_t end = s->find_last_not_of(" \t");
  s->erase(end == std::string::npos ? 0 : end + 1);
  s->erase(0, std::min(s->size(), s->find_first_not_of(" \t")));
}

std::string UrlField(const std::string& url, const http_parser_url& u, int field) {
  if ((u.field_set & (1u << field)) == 0) return {};
  return url.substr(u.field_data[field].off, u.field_data[field].len);
}

}  // namespace

const http_parser_settings HttpRequestParser::kSettings = {
    .on_message_begin = &HttpRequestParser::OnMessageBegin,
    .on_url = &HttpRequestParser::OnUrl,
    .on_status = nullptr,
    .on_header_field = &HttpRequestParser::OnHeaderField,
    .on_header_value = &HttpRequestParser::OnHeaderValue,
    .on_headers_complete = &HttpRequestParser::OnHeadersComplete,
    .on_body = &HttpRequestParser::OnBody,
    .on_message_complete = &HttpRequestParser::OnMessageComplete,
    .on_chunk_header = nullptr,
    .on_chunk_complete = nullptr,
};

HttpRequestParser::HttpRequestParser(const HttpLimits* limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

HttpRequestParser::Result HttpRequestParser::Parse(std::string_view data, size_t* consumed) {
  *consumed = 0;
  while (!failed_ && *consumed < data.size()) {
    size_t chunk = data.size() - *consumed;
    if (!headers_done_) {
      // Feed the head no further than the limit, so the limit is exact and libhttp-parser
      // never holds more of an oversized head than that.
      size_t room = limits_->max_header_bytes - head_bytes_;
      if (room == 0) {
        FailHeadersTooLarge();
        break;
      }
      chunk = std::min(chunk, room);
    }
    size_t n = http_parser_execute(&parser_, &kSettings, data.data() + *consumed, chunk);
    *consumed += n;
    if (!headers_done_) head_bytes_ += n;
    if (failed_) break;  // a callback refused the request
    http_errno e = HTTP_PARSER_ERRNO(&parser_);
    if (e == HPE_PAUSED) {  // OnMessageComplete paused at the end of a request
      http_parser_pause(&parser_, 0);
      return Result::kRequest;
    }
    if (e != HPE_OK) {
      FailFromParser();
    } else if (n < chunk) {  // libhttp-parser stopped without a reason: do not loop
      Fail(JsonError(400, "malformed_request", "the request could not be parsed"));
    }
  }
  return failed_ ? Result::kError : Result::kNeedMore;
}

HttpRequest HttpRequestParser::TakeRequest() {
  HttpRequest request = std::move(request_);
  ResetMessage();
  return request;
}

bool HttpRequestParser::TakeExpectContinue() { return std::exchange(expect_continue_, false); }

void HttpRequestParser::ResetMessage() {
  request_ = HttpRequest();
  url_.clear();
  headers_done_ = false;
  last_was_value_ = true;
  head_bytes_ = 0;
  expect_continue_ = false;
}

int HttpRequestParser::OnMessageBegin(http_parser* p) {
  Self(p)->in_request_ = true;
  return 0;
}

int HttpRequestParser::OnUrl(http_parser* p, const char* at, size_t length) {
  Self(p)->url_.append(at, length);
  return 0;
}

int HttpRequestParser::OnHeaderField(http_parser* p, const char* at, size_t length) {
  HttpRequestParser* self = Self(p);
  if (self->headers_done_) return 0;  // a trailer of a chunked body: not kept
  auto& headers = self->request_.headers;
  if (self->last_was_value_ || headers.empty()) headers.emplace_back();
  self->last_was_value_ = false;
  for (size_t i = 0; i < length; ++i) headers.back().first.push_back(AsciiLower(at[i]));
  return 0;
}

int HttpRequestParser::OnHeaderValue(http_parser* p, const char* at, size_t length) {
  HttpRequestParser* self = Self(p);
  if (self->headers_done_) return 0;
  if (self->request_.headers.empty()) self->request_.headers.emplace_back();
  self->request_.headers.back().second.append(at, length);
  self->last_was_value_ = true;
  return 0;
}

int HttpRequestParser::OnHeadersComplete(http_parser* p) { return Self(p)->HeadersComplete(); }

int HttpRequestParser::HeadersComplete() {
  headers_done_ = true;
  for (auto& header : request_.headers) TrimWhitespace(&header.second);
  uint64_t length = parser_.content_length;  // ULLONG_MAX: no Content-Length
  if (length != ULLONG_MAX && length > limits_->max_body_bytes) {
    Fail(JsonError(413, "body_too_large",
                   "the request body exceeds " + std::to_string(limits_->max_body_bytes) + " bytes",
                   {{"limit", limits_->max_body_bytes}}));
    return -1;  // any value but 0, 1 and 2 stops libhttp-parser with an error
  }
  bool has_body = (parser_.flags & F_CHUNKED) != 0 || (length != ULLONG_MAX && length > 0);
  const std::string* expect = request_.Header("expect");
  expect_continue_ = has_body && expect && EqualsIgnoringAsciiCase(*expect, "100-continue");
  return 0;
}

int HttpRequestParser::OnBody(http_parser* p, const char* at, size_t length) {
  HttpRequestParser* self = Self(p);
  if (length > self->limits_->max_body_bytes - self->request_.body.size()) {
    size_t limit = self->limits_->max_body_bytes;
    self->Fail(JsonError(413, "body_too_large",
                         "the request body exceeds " + std::to_string(limit) + " bytes",
                         {{"limit", limit}}));
    return -1;
  }
  self->request_.body.append(at, length);
  return 0;
}

int HttpRequestParser::OnMessageComplete(http_parser* p) { return Self(p)->MessageComplete(); }

int HttpRequestParser::MessageComplete() {
  auto method = static_cast<http_method>(parser_.method);
  if (method == HTTP_CONNECT) {  // what follows would be a tunnel, not HTTP
    Fail(JsonError(405, "method_not_allowed", "CONNECT is not supported"));
    return -1;
  }
  if (!SplitTarget()) {
    Fail(JsonError(400, "malformed_request", "the request target is not a valid URL",
                   {{"target", url_}}));
    return -1;
  }
  request_.method = http_method_str(method);
  keep_alive_ = http_should_keep_alive(&parser_) != 0;
  http_1_0_ = parser_.http_major < 1 || (parser_.http_major == 1 && parser_.http_minor == 0);
  head_ = method == HTTP_HEAD;
  in_request_ = false;
  http_parser_pause(&parser_, 1);  // Parse returns the request before reading the next one
  return 0;
}

bool HttpRequestParser::SplitTarget() {
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url_.data(), url_.size(), 0, &u) != 0) {
    return false;
  }
  request_.path = UrlField(url_, u, UF_PATH);
  if (request_.path.empty()) request_.path = "/";  // "http://localhost" in absolute form
  request_.query = UrlField(url_, u, UF_QUERY);
  return true;
}

void HttpRequestParser::Fail(HttpResponse response) {
  failed_ = true;
  error_ = std::move(response);
}

void HttpRequestParser::FailHeadersTooLarge() {
  Fail(JsonError(
      431, "headers_too_large",
      "the request line and headers exceed " + std::to_string(limits_->max_header_bytes) + " bytes",
      {{"limit", limits_->max_header_bytes}}));
}

void HttpRequestParser::FailFromParser() {
  auto e = HTTP_PARSER_ERRNO(&parser_);
  if (e == HPE_HEADER_OVERFLOW) {  // libhttp-parser's own limit (80 KiB)
    FailHeadersTooLarge();
    return;
  }
  Fail(JsonError(400, "malformed_request",
                 std::string("malformed HTTP request: ") + http_errno_description(e),
                 {{"parser_error", http_errno_name(e)}}));
}

}  // namespace chainctl::daemon
