#include "cli/http_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/test_util.h"

namespace chainctl::cli {
namespace {

using std::chrono::milliseconds;

// A one-connection server: accepts, reads the request head, writes `answer`
// (unless empty), then waits for the client to hang up.
class CannedServer {
 public:
  explicit CannedServer(std::string answer) : path_(dir_.path() + "/s.sock") {
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 1), 0);
    thread_ = std::thread([this, answer = std::move(answer)] {
      int c = accept(listen_fd_, nullptr, nullptr);
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      request_ = got;
      if (!answer.empty()) {
        EXPECT_GT(write(c, answer.data(), answer.size()), 0);
      }
      while (read(c, buf, sizeof buf) > 0) {
      }
      close(c);
    });
  }
  ~CannedServer() {
    Join();
    close(listen_fd_);
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& path() const { return path_; }
  // The request head as the server read it; call Join() first.
  const std::string& request() const { return request_; }

 private:
  testing::ScopedTempDir dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::string request_;
  std::thread thread_;
};

TEST(HttpClient, ReadsStatusHeadersAndBody) {
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  {
    CannedServer server(
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        "{\"ok\":true}");
    HttpClientRequest request{"POST", "/chains?x=1", "application/yaml", "tasks: []"};
    ASSERT_TRUE(HttpCall(server.path(), request, milliseconds(10'000), &response, &error, &err))
        << err;
  }
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, "{\"ok\":true}");
  ASSERT_FALSE(response.headers.empty());
  EXPECT_EQ(response.headers[0],
            (std::pair<std::string, std::string>{"content-type", "application/json"}));
}

TEST(HttpClient, SendsAWellFormedRequest) {
  CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  HttpClientRequest request{"POST", "/chains", "application/json", "{}"};
  ASSERT_TRUE(HttpCall(server.path(), request, milliseconds(10'000), &response, &error, &err));
  server.Join();
  EXPECT_TRUE(server.request().starts_with("POST /chains HTTP/1.1\r\n")) << server.request();
  EXPECT_NE(server.request().find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(server.request().find("Content-Length: 2\r\n"), std::string::npos);
}

TEST(HttpClient, StreamsChunkedBodies) {
  CannedServer server(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\n{\"a\":1\r\n2\r\n}\n\r\n0\r\n\r\n");
  HttpClientResponse response;
  HttpCallError error;
  std::string err, streamed;
  ASSERT_TRUE(HttpCall(server.path(), {}, milliseconds(10'000), &response, &error, &err,
                       [&](std::string_view piece) { streamed += piece; }));
  EXPECT_EQ(streamed, "{\"a\":1}\n");
  EXPECT_EQ(response.body, "");
}

TEST(HttpClient, NoDaemon) {
  testing::ScopedTempDir dir;
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  EXPECT_FALSE(
      HttpCall(dir.path() + "/none.sock", {}, milliseconds(1000), &response, &error, &err));
  EXPECT_EQ(error, HttpCallError::kNoDaemon);
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
}

TEST(HttpClient, NotHttp) {
  CannedServer server("SSH-2.0-OpenSSH\r\n");
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  EXPECT_FALSE(HttpCall(server.path(), {}, milliseconds(10'000), &response, &error, &err));
  EXPECT_EQ(error, HttpCallError::kProtocol);
}

TEST(HttpClient, GivesUpAtTheDeadline) {
  CannedServer server("");  // reads the request, never answers
  HttpClientResponse response;
  HttpCallError error;
  std::string err;
  EXPECT_FALSE(HttpCall(server.path(), {}, milliseconds(50), &response, &error, &err));
  EXPECT_EQ(error, HttpCallError::kTimeout);
  EXPECT_EQ(err, "no answer from chaind within 50 ms");
}

}  // namespace
}  // namespace chainctl::cli
