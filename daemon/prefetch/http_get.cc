#include "daemon/prefetch/http_get.h"

#include <curl/curl.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "common/json_text.h"

namespace chainctl::daemon {
namespace {

constexpr long kConnectTimeoutMs = 10'000;
constexpr long kLowSpeedBytesPerS = 1024;  // slower than this ...
constexpr long kLowSpeedTimeS = 30;        // ... for this long fails the transfer
constexpr long kMaxRedirects = 5;

// What the callbacks see during one transfer.
struct Transfer {
  const HttpGetRequest* request = nullptr;
  HttpGetResponse* response = nullptr;
  bool stopped_unread = false;  // a 200 ended on purpose (body_fd < 0)
  int write_errno = 0;          // writing the body failed
};

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  size_t start = text.find_first_not_of(' ');
  return start == std::string::npos ? "" : text.substr(start);
}

// "Name: value" → value if the name is `name` (case-insensitive).
bool HeaderValue(const std::string& line, const char* name, std::string* value) {
  size_t len = std::strlen(name);
  if (line.size() <= len || line[len] != ':' || strncasecmp(line.c_str(), name, len) != 0) {
    return false;
  }
  *value = Trim(line.substr(len + 1));
  return true;
}

// One header line; a status line starts a new response (redirects): what came before is reset.
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::string line(data, size * count);
  HttpGetResponse* response = transfer->response;
  if (line.rfind("HTTP/", 0) == 0) {
    size_t space = line.find(' ');
    response->reason = space == std::string::npos ? "" : Trim(line.substr(space + 1));
    response->etag.clear();
    response->last_modified.clear();
  } else {
    // Validators go into the cache's JSON metadata: one that is not UTF-8 is not kept (the
    // entry is then never fresh, as without one), never a value that fails to dump.
    std::string value;
    if (HeaderValue(line, "ETag", &value)) {
      if (!FindInvalidUtf8(value)) response->etag = value;
    } else if (HeaderValue(line, "Last-Modified", &value)) {
      if (!FindInvalidUtf8(value)) response->last_modified = value;
    }
  }
  return size * count;
}

// Body bytes: a 200's go to body_fd; other answers' (error pages, redirects) are dropped.
size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t bytes = size * count;
  if (transfer->response->reason.rfind("200", 0) != 0) return bytes;
  if (transfer->request->body_fd < 0) {
    transfer->stopped_unread = true;
    return 0;  // != bytes: curl ends the transfer
  }
  if (!WriteAll(transfer->request->body_fd, data, bytes, &transfer->write_errno)) return 0;
  transfer->response->body_bytes += bytes;
  return bytes;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

bool GlobalInit(std::string* err) {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (code != CURLE_OK) *err = std::string("curl_global_init: ") + curl_easy_strerror(code);
  return code == CURLE_OK;
}

void SetOptions(CURL* curl, const HttpGetRequest& request, curl_slist* headers, Transfer* transfer,
                char* error_buffer) {
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedBytesPerS);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, kLowSpeedTimeS);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, transfer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, transfer);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
}

// "GET URL: why" for a transfer that failed.
std::string TransferError(const HttpGetRequest& request, CURLcode code, const Transfer& transfer,
                          const char* error_buffer) {
  std::string why = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  if (transfer.write_errno != 0)
    why = std::string("writing: ") + std::strerror(transfer.write_errno);
  return "GET " + request.url + ": " + why;
}

}  // namespace

bool IsHttpUrl(const std::string& text) {
  return strncasecmp(text.c_str(), "http://", 7) == 0 ||
         strncasecmp(text.c_str(), "https://", 8) == 0;
}

bool HttpGet(const HttpGetRequest& request, HttpGetResponse* response, std::string* err) {
  *response = HttpGetResponse{};
  if (!IsHttpUrl(request.url)) {
    *err = "GET " + request.url + ": only http and https URLs are fetched";
    return false;
  }
  if (!GlobalInit(err)) return false;
  // Declared before the handle, so they outlive it.
  char error_buffer[CURL_ERROR_SIZE] = {};
  Transfer transfer{&request, response, false, 0};
  curl_slist* list = nullptr;
  if (!request.if_none_match.empty()) {
    list = curl_slist_append(list, ("If-None-Match: " + request.if_none_match).c_str());
  }
  if (!request.if_modified_since.empty()) {
    list = curl_slist_append(list, ("If-Modified-Since: " + request.if_modified_since).c_str());
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(list);
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) {
    *err = "GET " + request.url + ": curl_easy_init failed";
    return false;
  }
  SetOptions(curl.get(), request, headers.get(), &transfer, error_buffer);
  CURLcode code = curl_easy_perform(curl.get());
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response->status);
  if (code == CURLE_WRITE_ERROR && transfer.stopped_unread) code = CURLE_OK;
  if (code != CURLE_OK) {
    *err = TransferError(request, code, transfer, error_buffer);
    return false;
  }
  if (response->reason.empty()) response->reason = std::to_string(response->status);
  curl_off_t length = -1;
  curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  if (response->status == 200 && request.body_fd >= 0 && length >= 0 &&
      static_cast<uint64_t>(length) != response->body_bytes) {
    *err = "GET " + request.url + ": body of " + std::to_string(response->body_bytes) +
           " bytes, Content-Length " + std::to_string(length);
    return false;
  }
  return true;
}

bool WriteAll(int fd, const char* data, size_t size, int* error) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = errno;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace chainctl::daemon
