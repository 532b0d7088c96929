// Shared by the HttpServer tests: a blocking AF_UNIX client, and a fixture that runs the
// server's loop on its own thread. Header-only (tests/CMakeLists.txt builds *_test.cc only).
//
// Threads: the test thread talks to the server through real sockets and reaches the loop only
// through RunOnLoop (a uv_async handshake); the loop thread runs the server and the handler.
// Waits are handshakes or bounded polls with a generous deadline, never fixed sleeps.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/http/server.h"
#include "tests/test_util.h"

namespace chainctl::daemon::http_test {

using nlohmann::json;

// Only a broken server makes a test wait this long.
inline constexpr auto kDeadline = std::chrono::seconds(20);

// Polls `condition` until it holds or kDeadline passes.
template <typename Condition>
bool Eventually(Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof(address.sun_path) - 1));
  return address;
}

// Entries of /proc/self/fd.
inline size_t OpenFdCount() {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

struct Response {
  int status = 0;
  std::string status_line;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;

  const std::string* Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return &v;
    }
    return nullptr;
  }
  std::string HeaderOr(std::string_view name, std::string fallback = "") const {
    const std::string* value = Header(name);
    return value ? *value : fallback;
  }
  json Json() const { return json::parse(body, nullptr, false); }
};

// A blocking client; every receive gives up after kDeadline.
class Client {
 public:
  // Connected to `path` (connected() false if that failed); with connect_now false, a socket
  // to Connect later.
  explicit Client(const std::string& path, bool connect_now = true) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{std::chrono::seconds(kDeadline).count(), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    if (connect_now && !Connect(path)) Close();
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects the socket (needs no new descriptor).
  bool Connect(const std::string& path) {
    sockaddr_un address = UnixAddress(path);
    return connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Shuts the write side: the server sees EOF and may still answer.
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // False if the server no longer takes data (it may have answered and closed).
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  std::optional<Response> Get(const std::string& target, const std::string& extra_headers = "") {
    if (!Send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers + "\r\n")) {
      return std::nullopt;
    }
    return Read();
  }

  // Reads one final response (1xx responses are skipped); nullopt on EOF, error or timeout.
  std::optional<Response> Read() {
    for (;;) {
      std::optional<Response> response = ReadOne();
      if (!response || response->status >= 200) return response;
    }
  }

  // Reads the next head of a response as text, up to its empty line.
  std::optional<std::string> ReadHead() {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    std::string head = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    return head;
  }

  // Reads until `marker` has arrived; returns everything up to and including it.
  std::optional<std::string> ReadUntil(std::string_view marker) {
    size_t at;
    while ((at = buffer_.find(marker)) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    std::string text = buffer_.substr(0, at + marker.size());
    buffer_.erase(0, at + marker.size());
    return text;
  }

  // Everything until the server closes.
  std::string ReadToEof() {
    while (Fill()) {
    }
    return std::exchange(buffer_, std::string());
  }

  // True if the server has closed: EOF (or a reset) with no data before it.
  bool ReadEof() {
    if (!buffer_.empty()) return false;
    char byte;
    ssize_t n;
    do {
      n = recv(fd_, &byte, 1, 0);
    } while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char chunk[16 * 1024];
    ssize_t n;
    do {
      n = recv(fd_, chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  bool ReadExactly(size_t size, std::string* out) {
    while (buffer_.size() < size) {
      if (!Fill()) return false;
    }
    out->append(buffer_, 0, size);
    buffer_.erase(0, size);
    return true;
  }

  bool ReadLine(std::string* line) {
    size_t end;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    *line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return true;
  }

  static void ParseHead(const std::string& head, Response* response) {
    size_t line_end = head.find("\r\n");
    response->status_line = head.substr(0, line_end);
    if (response->status_line.size() >= 12) {
      response->status = std::atoi(response->status_line.substr(9, 3).c_str());
    }
    size_t at = line_end + 2;
    while (at < head.size() - 2) {
      size_t end = head.find("\r\n", at);
      std::string line = head.substr(at, end - at);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t value_start = line.find_first_not_of(' ', colon + 1);
      response->headers.emplace_back(
          name, value_start == std::string::npos ? "" : line.substr(value_start));
      at = end + 2;
    }
  }

  bool ReadChunkedBody(std::string* body) {
    for (;;) {
      std::string line;
      if (!ReadLine(&line)) return false;
      size_t size = std::stoul(line, nullptr, 16);
      if (size == 0) return ReadLine(&line);  // no trailers from this server
      if (!ReadExactly(size, body) || !ReadLine(&line)) return false;
    }
  }

  std::optional<Response> ReadOne() {
    std::optional<std::string> head = ReadHead();
    if (!head) return std::nullopt;
    Response response;
    ParseHead(*head, &response);
    if (response.status < 200 || response.status == 204 || response.status == 304) {
      return response;
    }
    if (response.HeaderOr("transfer-encoding") == "chunked") {
      if (!ReadChunkedBody(&response.body)) return std::nullopt;
    } else if (const std::string* length = response.Header("content-length")) {
      if (!ReadExactly(std::stoul(*length), &response.body)) return std::nullopt;
    } else {
      response.body = ReadToEof();
    }
    return response;
  }

  int fd_ = -1;
  std::string buffer_;
};

// Runs an HttpServer on a loop thread. The default handler:
//   /later   answers from the after-work callback of a thread-pool job
//   /thread  answers from another thread, through a uv_async handshake (RunOnLoop)
//   /hold    keeps the Responder in held_ until the test answers it (AnswerHeld)
//   /stats   the server's stats
//   else     echoes the request as JSON
class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as chaind does: writes to a gone client fail with EPIPE
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    loop_initialised_ = true;
    socket_path_ = dir_.path() + "/s";
  }

  void TearDown() override {
    if (thread_.joinable()) StopServer();
    for (std::thread& t : helpers_) t.join();
    if (loop_initialised_ && !thread_.joinable()) {
      EXPECT_EQ(uv_loop_close(&loop_), 0);
    }
  }

  // Makes the server with `handler` (default: Handle), listens on socket_path_ and starts
  // the loop thread.
  void StartServer(HttpLimits limits = {}, Handler handler = nullptr) {
    if (!handler) {
      handler = [this](HttpRequest request, Responder respond) {
        Handle(std::move(request), std::move(respond));
      };
    }
    server_ = std::make_unique<HttpServer>(&loop_, limits, std::move(handler));
    ASSERT_EQ(server_->Listen(socket_path_), 0);
    StartLoopThread();
  }

  void StartLoopThread() {
    ASSERT_EQ(uv_async_init(&loop_, &async_, OnAsync), 0);
    async_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  // Shuts the server down and waits for the loop to end: Shutdown's callback closes the
  // last handle of the fixture. No handle may be left (uv_loop_close checks in TearDown).
  void StopServer() {
    BeginShutdown();
    thread_.join();
    EXPECT_TRUE(shutdown_done_);
    server_.reset();
  }

  // Starts Shutdown on the loop; its callback closes async_, so RunOnLoop works until then.
  void BeginShutdown() {
    RunOnLoop([this] {
      server_->Shutdown([this] {
        shutdown_done_ = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      });
    });
  }

  // Runs `task` on the loop thread and waits until it has run.
  void RunOnLoop(std::function<void()> task) {
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> ran = done->get_future();
    Post([task = std::move(task), done] {
      task();
      done->set_value();
    });
    ASSERT_EQ(ran.wait_for(kDeadline), std::future_status::ready) << "the loop is stuck";
  }

  // Queues `task` for the loop thread; callable from any thread.
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    uv_async_send(&async_);
  }

  HttpServer::Stats Stats() {
    HttpServer::Stats stats;
    RunOnLoop([&] { stats = server_->stats(); });
    return stats;
  }

  // Waits until `count` requests are held by /hold.
  void WaitHeld(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(held_cv_.wait_for(lock, kDeadline, [&] { return held_count_ >= count; }));
  }

  // Answers the oldest held request on the loop thread.
  void AnswerHeld(HttpResponse response) {
    RunOnLoop([&] {
      ASSERT_FALSE(held_.empty());
      Responder respond = std::move(held_.front());
      held_.erase(held_.begin());
      respond(std::move(response));
    });
  }

  static HttpResponse Text(int status, std::string body) {
    HttpResponse response;
    response.status = status;
    response.content_type = "text/plain";
    response.body = std::move(body);
    return response;
  }

  static json Echo(const HttpRequest& request) {
    json headers = json::object();
    for (const auto& [name, value] : request.headers) headers[name] = value;
    return {
        {"method", request.method}, {"path", request.path},         {"query", request.query},
        {"body", request.body},     {"peer_uid", request.peer_uid}, {"peer_pid", request.peer_pid},
        {"headers", headers}};
  }

  void Handle(HttpRequest request, Responder respond) {
    if (request.path == "/later") return AnswerFromThreadPool(std::move(respond));
    if (request.path == "/thread") return AnswerFromThread(std::move(respond));
    if (request.path == "/hold") {
      held_.push_back(std::move(respond));
      std::lock_guard<std::mutex> lock(mu_);
      ++held_count_;
      held_cv_.notify_all();
      return;
    }
    HttpResponse response;
    if (request.path == "/stats") {
      HttpServer::Stats s = server_->stats();
      response.body = json{
          {"open_connections", s.open_connections},
          {"requests_in_flight", s.requests_in_flight},
          {"requests",
           s.requests}}.dump();
    } else {
      response.body = Echo(request).dump();
    }
    respond(std::move(response));
  }

  struct Work {
    uv_work_t req;
    Responder respond;
  };

  void AnswerFromThreadPool(Responder respond) {
    auto* work = new Work{uv_work_t{}, std::move(respond)};
    work->req.data = work;
    int rc = uv_queue_work(
        &loop_, &work->req, [](uv_work_t*) {},
        [](uv_work_t* req, int) {
          auto* w = static_cast<Work*>(req->data);
          w->respond(Text(200, "from the thread pool"));
          delete w;
        });
    ASSERT_EQ(rc, 0);
  }

  void AnswerFromThread(Responder respond) {
    std::lock_guard<std::mutex> lock(mu_);
    helpers_.emplace_back([this, respond = std::move(respond)]() mutable {
      Post([respond = std::move(respond)] { respond(Text(200, "from another thread")); });
    });
  }

  testing::ScopedTempDir dir_;
  std::string socket_path_;
  uv_loop_t loop_;
  bool loop_initialised_ = false;
  uv_async_t async_;
  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
  bool shutdown_done_ = false;  // loop thread; read after join

  std::mutex mu_;  // guards tasks_, held_count_, helpers_
  std::vector<std::function<void()>> tasks_;
  std::condition_variable held_cv_;
  size_t held_count_ = 0;
  std::vector<Responder> held_;  // loop thread only
  std::vector<std::thread> helpers_;

 private:
  static void OnAsync(uv_async_t* async) {
    auto* self = static_cast<HttpServerTest*>(async->data);
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      tasks.swap(self->tasks_);
    }
    for (auto& task : tasks) task();
  }
};

}  // namespace chainctl::daemon::http_test
