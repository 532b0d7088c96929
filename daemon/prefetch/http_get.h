// One blocking HTTP GET with libcurl, for the input cache (http_cache.h): conditional
// (If-None-Match / If-Modified-Since), the body of a 200 written to a file descriptor, the
// validators of the answer read back. Only http and https, also through redirects (at most 5);
// a connect timeout of 10 s and a low-speed limit (< 1 KiB/s for 30 s fails) so that a dead
// server does not hang the caller. curl_global_init runs once, at the first call. Thread-safe:
// one easy handle per call, no signals (CURLOPT_NOSIGNAL).
#pragma once

#include <cstdint>
#include <string>

namespace chainctl::daemon {

struct HttpGetRequest {
  std::string url;
  std::string if_none_match;      // sent as If-None-Match if not empty
  std::string if_modified_since;  // sent as If-Modified-Since if not empty
  int body_fd = -1;  // a 200's body is written here; -1: a 200 ends the transfer unread
};

struct HttpGetResponse {
  long status = 0;     // of the last response (after redirects)
  std::string reason;  // "404 Not Found" (just "404" when the server gave no phrase)
  // Validators, "" if none or not UTF-8 (they are stored as JSON).
  std::string etag;           // its ETag header, as sent (quotes kept)
  std::string last_modified;  // its Last-Modified header
  uint64_t body_bytes = 0;    // bytes of a 200's body written to body_fd
};

// True if an answer came (any status: the caller judges it); false with *err ("GET URL: why")
// if none did or the body could not be read whole (shorter than its Content-Length, a write
// error). A scheme other than http(s) is refused.
bool HttpGet(const HttpGetRequest& request, HttpGetResponse* response, std::string* err);

// Writes all of `data` to `fd` (again after EINTR); false with *error = errno otherwise.
bool WriteAll(int fd, const char* data, size_t size, int* error);

// True for "http://…" and "https://…" (case-insensitive scheme).
bool IsHttpUrl(const std::string& text);

}  // namespace chainctl::daemon
