// A tiny HTTP/1.1 origin server for the input cache's tests: a thread answering GETs on
// 127.0.0.1 (port chosen by the kernel), one connection at a time, "Connection: close".
// Each path serves a Resource: its body with ETag / Last-Modified (304 on a matching
// If-None-Match, or If-Modified-Since equal to Last-Modified), a status such as 404, a
// redirect, or a body cut short of its Content-Length. Requests are counted per path.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace chainctl::testing {

class HttpOrigin {
 public:
  struct Resource {
    std::string body;
    std::string etag;           // sent as is ("\"v1\""); "" = none
    std::string last_modified;  // "" = none
    int status = 200;           // 404 ...: an error page
    std::string location;       // a 302 to this, if not empty
    bool truncate = false;      // Content-Length says body.size() + 100
  };
  static Resource Ok(std::string body, std::string etag = "", std::string last_modified = "") {
    Resource r;
    r.body = std::move(body);
    r.etag = std::move(etag);
    r.last_modified = std::move(last_modified);
    return r;
  }
  static Resource Redirect(std::string location) {
    Resource r;
    r.location = std::move(location);
    return r;
  }
  static Resource Truncated(std::string body, std::string etag) {
    Resource r = Ok(std::move(body), std::move(etag));
    r.truncate = true;
    return r;
  }
  struct Seen {
    int requests = 0;
    int not_modified = 0;                          // 304s answered
    std::string if_none_match, if_modified_since;  // of the last request
  };

  HttpOrigin() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 64) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::abort();
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HttpOrigin() {
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(listen_fd_);
  }
  HttpOrigin(const HttpOrigin&) = delete;
  HttpOrigin& operator=(const HttpOrigin&) = delete;

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void Set(const std::string& path, Resource resource) {
    std::lock_guard lock(mu_);
    resources_[path] = std::move(resource);
  }
  Seen SeenAt(const std::string& path) {
    std::lock_guard lock(mu_);
    return seen_[path];
  }

 private:
  void Serve() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      Answer(fd);
      close(fd);
    }
  }

  static std::string Header(const std::string& head, const char* name) {
    std::string key = std::string("\r\n") + name + ":";
    for (size_t at = 0; (at = head.find("\r\n", at)) != std::string::npos; at += 2) {
      if (strncasecmp(head.c_str() + at, key.c_str(), key.size()) != 0) continue;
      size_t start = head.find_first_not_of(' ', at + key.size());
      return head.substr(start, head.find("\r\n", start) - start);
    }
    return "";
  }

  void Answer(int fd) {
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(fd, buffer, sizeof buffer);
      if (n <= 0) return;
      head.append(buffer, static_cast<size_t>(n));
    }
    size_t path_start = head.find(' ') + 1;
    std::string path = head.substr(path_start, head.find(' ', path_start) - path_start);
    std::string response =
        Respond(path, Header(head, "If-None-Match"), Header(head, "If-Modified-Since"));
    for (size_t done = 0; done < response.size();) {
      ssize_t n = write(fd, response.data() + done, response.size() - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  std::string Respond(const std::string& path, const std::string& inm, const std::string& ims) {
    std::lock_guard lock(mu_);
    Seen& seen = seen_[path];
    ++seen.requests;
    seen.if_none_match = inm;
    seen.if_modified_since = ims;
    auto it = resources_.find(path);
    if (it == resources_.end()) return Status(404, "Not Found", "", "no such resource\n");
    const Resource& r = it->second;
    if (!r.location.empty()) return Status(302, "Found", "Location: " + r.location + "\r\n", "");
    if (r.status != 200) return Status(r.status, "Not Found", "", "error page\n");
    std::string validators =
        (r.etag.empty() ? "" : "ETag: " + r.etag + "\r\n") +
        (r.last_modified.empty() ? "" : "Last-Modified: " + r.last_modified + "\r\n");
    bool fresh =
        !inm.empty() ? inm == r.etag && !r.etag.empty() : !ims.empty() && ims == r.last_modified;
    if (fresh) {
      ++seen.not_modified;
      return "HTTP/1.1 304 Not Modified\r\n" + validators + "Connection: close\r\n\r\n";
    }
    size_t length = r.body.size() + (r.truncate ? 100 : 0);
    return "HTTP/1.1 200 OK\r\n" + validators + "Content-Length: " + std::to_string(length) +
           "\r\nConnection: close\r\n\r\n" + r.body;
  }

  static std::string Status(int code, const char* reason, const std::string& headers,
                            const std::string& body) {
    return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
           body;
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, Resource> resources_;  // guarded by mu_
  std::map<std::string, Seen> seen_;           // guarded by mu_
};

}  // namespace chainctl::testing
