// HttpServer over a real Unix socket: requests and answers, keep-alive, order, late answers,
// streamed bodies, listening, and shutdown. Limits are in http_server_limits_test.cc.
#include "daemon/http/server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/daemon/http/server_fixture.h"

namespace chainctl::daemon::http_test {
namespace {

TEST_F(HttpServerTest, AnswersGetWithTheHandlersResponse) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.connected());
  std::optional<Response> response = client.Get("/chains/etl?format=yaml", "X-Thing: A b \r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response->HeaderOr("content-type"), "application/json");
  EXPECT_EQ(response->HeaderOr("content-length"), std::to_string(response->body.size()));
  EXPECT_EQ(response->Header("connection"), nullptr);
  json echo = response->Json();
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["path"], "/chains/etl");
  EXPECT_EQ(echo["query"], "format=yaml");
  EXPECT_EQ(echo["headers"]["x-thing"], "A b");
  EXPECT_EQ(echo["headers"]["host"], "localhost");
  EXPECT_EQ(echo["peer_uid"], getuid());
  EXPECT_EQ(echo["peer_pid"], getpid());
}

TEST_F(HttpServerTest, AnswersPostWithItsBody) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send(
      "POST /chains HTTP/1.1\r\nContent-Type: application/yaml\r\nContent-Length: 11\r\n\r\n"
      "tasks: []\n!"));
  std::optional<Response> response = client.Read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Json()["method"], "POST");
  EXPECT_EQ(response->Json()["body"], "tasks: []\n!");
}

TEST_F(HttpServerTest, ReadsAChunkedBody) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(
      client.Send("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
                  "world\r\n0\r\n\r\n"));
  std::optional<Response> response = client.Read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Json()["body"], "hello world");
}

TEST_F(HttpServerTest, KeepsTheConnectionForTwoRequests) {
  StartServer();
  Client client(socket_path_);
  std::optional<Response> first = client.Get("/one");
  std::optional<Response> second = client.Get("/two");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->Json()["path"], "/one");
  EXPECT_EQ(second->Json()["path"], "/two");
  EXPECT_EQ(Stats().connections, 1u);
  EXPECT_EQ(Stats().requests, 2u);
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsInOrderOneAtATime) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(
      client.Send("GET /hold HTTP/1.1\r\n\r\nGET /later HTTP/1.1\r\n\r\nPOST /third HTTP/1.1\r\n"
                  "Content-Length: 3\r\n\r\nabc"));
  WaitHeld(1);
  EXPECT_EQ(Stats().requests, 1u) << "the next request must wait for the answer";
  AnswerHeld(Text(201, "held"));
  std::optional<Response> first = client.Read();
  std::optional<Response> second = client.Read();
  std::optional<Response> third = client.Read();
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(first->status, 201);
  EXPECT_EQ(first->body, "held");
  EXPECT_EQ(second->body, "from the thread pool");
  EXPECT_EQ(third->Json()["body"], "abc");
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsAfterTheClientHalfCloses) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"));
  client.ShutdownWrite();
  std::optional<Response> a = client.Read();
  std::optional<Response> b = client.Read();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->Json()["path"], "/b");
  EXPECT_TRUE(client.ReadEof());
}

TEST_F(HttpServerTest, AnswersLaterFromTheThreadPool) {
  StartServer();
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/later");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "from the thread pool");
}

TEST_F(HttpServerTest, AnswersLaterFromAnotherThreadThroughAsync) {
  StartServer();
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/thread");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "from another thread");
  EXPECT_TRUE(client.Get("/after"));
}

TEST_F(HttpServerTest, AnswerAfterTheClientLeftIsDropped) {
  StartServer();
  {
    Client client(socket_path_);
    ASSERT_TRUE(client.Send("GET /hold HTTP/1.1\r\n\r\n"));
    WaitHeld(1);
  }
  AnswerHeld(Text(200, "nobody reads this"));
  EXPECT_TRUE(Eventually([&] { return Stats().open_connections == 0; }));
  EXPECT_EQ(Stats().requests_in_flight, 0u);
  Client next(socket_path_);
  EXPECT_TRUE(next.Get("/still-serving"));
}

TEST_F(HttpServerTest, AnswerAfterTheConnectionWasFreedIsANoOp) {
  std::vector<Responder> kept;  // loop thread
  StartServer({}, [&](HttpRequest, Responder respond) { kept.push_back(respond); });
  {
    Client client(socket_path_);
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(Eventually([&] { return Stats().requests == 1; }));
  }
  // The client left; the server sees EOF but waits for the answer, then write fails.
  RunOnLoop([&] { kept[0](Text(200, "late")); });
  ASSERT_TRUE(Eventually([&] { return Stats().open_connections == 0; }));
  RunOnLoop([&] {
    kept[0](Text(200, "again"));  // the connection is freed: nothing happens
    kept.clear();
  });
}

TEST_F(HttpServerTest, HandlerThatThrowsGets500) {
  StartServer({}, [](HttpRequest, Responder) { throw std::runtime_error("boom"); });
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->Json()["error"]["code"], "internal_error");
  EXPECT_NE(response->body.find("boom"), std::string::npos);
  EXPECT_TRUE(client.Get("/"));  // the connection goes on
}

TEST_F(HttpServerTest, ResponderDroppedUnansweredGets500) {
  StartServer({}, [](HttpRequest, Responder) {});
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
}

TEST_F(HttpServerTest, InvalidResponseHeaderGets500) {
  StartServer({}, [](HttpRequest, Responder respond) {
    HttpResponse response;
    response.headers = {{"X-Evil", "a\r\nSet-Cookie: x"}};
    respond(response);
  });
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->Header("set-cookie"), nullptr);
}

TEST_F(HttpServerTest, HandlerHeadersAreSentAndConnectionCloseIsHonoured) {
  StartServer({}, [](HttpRequest, Responder respond) {
    HttpResponse response = Text(404, "no");
    response.headers = {{"X-Request-Id", "7"}, {"Connection", "close"}, {"Content-Length", "99"}};
    respond(response);
  });
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(response->HeaderOr("x-request-id"), "7");
  EXPECT_EQ(response->HeaderOr("content-length"), "2");
  EXPECT_EQ(response->HeaderOr("connection"), "close");
  EXPECT_TRUE(client.ReadEof());
}

TEST_F(HttpServerTest, Http10WithoutKeepAliveIsClosedAfterTheAnswer) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
  std::optional<Response> response = client.Read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->HeaderOr("connection"), "close");
  EXPECT_TRUE(client.ReadEof());
}

TEST_F(HttpServerTest, ClientConnectionCloseIsHonoured) {
  StartServer();
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/", "Connection: close\r\n");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->HeaderOr("connection"), "close");
  EXPECT_TRUE(client.ReadEof());
}

TEST_F(HttpServerTest, HeadGetsTheHeadersWithoutTheBody) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"));
  std::optional<std::string> head = client.ReadHead();
  ASSERT_TRUE(head);
  EXPECT_NE(head->find("Content-Length: "), std::string::npos);
  std::optional<Response> next = client.Read();  // right after the head: no body in between
  ASSERT_TRUE(next);
  EXPECT_EQ(next->Json()["path"], "/y");
}

TEST_F(HttpServerTest, SendsContinueBeforeTheBodyWhenAsked) {
  StartServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  std::optional<std::string> interim = client.ReadHead();
  ASSERT_TRUE(interim);
  EXPECT_EQ(*interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send("body"));
  std::optional<Response> response = client.Read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Json()["body"], "body");
}

TEST_F(HttpServerTest, ErrorBodiesHaveTheApiShape) {
  HttpResponse response = JsonError(422, "invalid_chain", "bad", {{"errors", {"x"}}});
  EXPECT_EQ(response.status, 422);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(json::parse(response.body),
            json::parse(R"({"error": {"code": "invalid_chain", "message": "bad",
                                      "details": {"errors": ["x"]}}})"));
  EXPECT_EQ(json::parse(JsonError(404, "not_found", "no \xff").body)["error"]["details"], nullptr);
}

// --- Listening ---

TEST_F(HttpServerTest, ListenMakesASocketOnlyItsUserCanUse) {
  StartServer();
  struct stat st {};
  ASSERT_EQ(stat(socket_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  StopServer();
  EXPECT_NE(access(socket_path_.c_str(), F_OK), 0) << "Shutdown removes the socket file";
}

TEST_F(HttpServerTest, ListenRefusesAPathInUseOrTooLong) {
  HttpServer server(&loop_, {}, [](HttpRequest, Responder) {});
  ASSERT_EQ(server.Listen(socket_path_), 0);
  EXPECT_EQ(server.Listen(socket_path_), UV_EADDRINUSE);
  EXPECT_EQ(server.Listen(dir_.path() + "/" + std::string(120, 'x')), UV_ENAMETOOLONG);
  EXPECT_EQ(server.Listen(dir_.path() + "/no/such/dir/s"), UV_ENOENT);
  bool done = false;
  server.Shutdown([&] { done = true; });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_TRUE(done);
}

TEST_F(HttpServerTest, ListenFdServesAnInheritedSocket) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address = UnixAddress(socket_path_);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  server_ = std::make_unique<HttpServer>(
      &loop_, HttpLimits{}, [](HttpRequest, Responder r) { r(Text(200, "socket activated")); });
  ASSERT_EQ(server_->ListenFd(fd), 0);
  StartLoopThread();
  Client client(socket_path_);
  std::optional<Response> response = client.Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "socket activated");
  StopServer();
  EXPECT_EQ(access(socket_path_.c_str(), F_OK), 0) << "a socket it did not make stays";
}

TEST_F(HttpServerTest, ListenFdRefusesASocketThatDoesNotListen) {
  HttpServer server(&loop_, {}, [](HttpRequest, Responder) {});
  EXPECT_EQ(server.ListenFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)), UV_EINVAL);
  EXPECT_EQ(server.ListenFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), UV_EINVAL);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  close(pipe_fds[1]);
  EXPECT_EQ(server.ListenFd(pipe_fds[0]), UV_ENOTSOCK);
  bool done = false;
  server.Shutdown([&] { done = true; });
  EXPECT_TRUE(done) << "nothing was open";
}

// --- Shutdown ---

TEST_F(HttpServerTest, ShutdownAnswersTheRequestInFlightThenCloses) {
  StartServer();
  Client busy(socket_path_);
  Client idle(socket_path_);
  ASSERT_TRUE(idle.Get("/"));
  ASSERT_TRUE(busy.Send("GET /hold HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n"));
  WaitHeld(1);
  BeginShutdown();
  EXPECT_TRUE(idle.ReadEof()) << "idle connections are closed at once";
  Client late(socket_path_);
  EXPECT_FALSE(late.connected()) << "no longer accepting";
  AnswerHeld(Text(200, "last words"));
  std::optional<Response> response = busy.Read();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "last words");
  EXPECT_EQ(response->HeaderOr("connection"), "close");
  EXPECT_TRUE(busy.ReadEof()) << "the pipelined request is not served";
  thread_.join();
  EXPECT_TRUE(shutdown_done_);
  server_.reset();
  EXPECT_EQ(uv_loop_close(&loop_), 0);
  loop_initialised_ = false;
}

// --- Streamed bodies ---

class HttpServerStreamTest : public HttpServerTest {
 protected:
  // /stream answers with an open stream, kept in stream_ for the test to write to.
  void StartStreamServer() {
    StartServer({}, [this](HttpRequest request, Responder respond) {
      if (request.path != "/stream") return Handle(std::move(request), std::move(respond));
      stream_ = std::make_shared<HttpBodyStream>();
      stream_->SetOnAbort([this] { aborted_ = true; });
      stream_->Write("before the head\n");
      HttpResponse response;
      response.content_type = "application/x-ndjson";
      response.body = "first\n";
      response.stream = stream_;
      respond(std::move(response));
    });
  }

  void StreamWrite(std::string data) {
    RunOnLoop([&] { EXPECT_TRUE(stream_->Write(data)); });
  }

  std::shared_ptr<HttpBodyStream> stream_;  // loop thread
  bool aborted_ = false;                    // loop thread
};

TEST_F(HttpServerStreamTest, StreamsAChunkedBodyThenServesTheNextRequest) {
  StartStreamServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.1\r\n\r\n"));
  std::optional<std::string> head = client.ReadHead();
  ASSERT_TRUE(head);
  EXPECT_NE(head->find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_EQ(head->find("Content-Length"), std::string::npos);
  // The body flows before it ends: its start arrives now.
  std::optional<std::string> start = client.ReadUntil("before the head\n\r\n");
  ASSERT_TRUE(start);
  EXPECT_EQ(*start, "6\r\nfirst\n\r\n10\r\nbefore the head\n\r\n");
  StreamWrite("second\n");
  RunOnLoop([&] {
    stream_->End();
    EXPECT_FALSE(stream_->Write("too late"));
  });
  std::optional<std::string> rest = client.ReadUntil("0\r\n\r\n");
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, "7\r\nsecond\n\r\n0\r\n\r\n");
  std::optional<Response> next = client.Get("/next");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->Json()["path"], "/next");
  RunOnLoop([&] { EXPECT_FALSE(aborted_); });
}

TEST_F(HttpServerStreamTest, ClientThatLeavesAbortsTheStream) {
  StartStreamServer();
  {
    Client client(socket_path_);
    ASSERT_TRUE(client.Send("GET /stream HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(client.ReadHead());
  }
  ASSERT_TRUE(Eventually([&] {
    bool aborted = false;
    RunOnLoop([&] { aborted = aborted_; });
    return aborted;
  }));
  RunOnLoop([&] {
    EXPECT_TRUE(stream_->closed());
    EXPECT_FALSE(stream_->Write("x"));
  });
}

TEST_F(HttpServerStreamTest, ShutdownCutsTheStream) {
  StartStreamServer();
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(client.ReadHead());
  StopServer();
  EXPECT_TRUE(aborted_);  // the loop thread has ended
  std::string rest = client.ReadToEof();
  EXPECT_FALSE(rest.ends_with("0\r\n\r\n")) << "cut, so the client sees it incomplete";
  stream_.reset();
}

// Issue 15, item 5: 40 clients asking for a 200 MB log and not reading pushed chaind's RSS to
// 801 MB. A producer that writes on drain holds at most what the socket has not taken.
TEST_F(HttpServerStreamTest, ProducerWritesOnDrainAsTheClientReads) {
  constexpr int kPieces = 64;
  constexpr size_t kPiece = 64 << 10;
  int produced = 0;  // loop thread
  StartServer({}, [&](HttpRequest request, Responder respond) {
    if (request.path != "/log") return Handle(std::move(request), std::move(respond));
    auto stream = std::make_shared<HttpBodyStream>();
    auto piece = [&produced] {
      std::string p = "piece " + std::to_string(produced++) + "\n";
      return p + std::string(kPiece - p.size(), '.');
    };
    stream->SetOnDrained([&produced, piece, weak = std::weak_ptr<HttpBodyStream>(stream)] {
      std::shared_ptr<HttpBodyStream> s = weak.lock();
      if (s && s->Write(piece()) && produced == kPieces) s->End();
    });
    HttpResponse response;
    response.content_type = "text/plain";
    response.body = piece();
    response.stream = stream;
    respond(std::move(response));
  });
  Client client(socket_path_);
  ASSERT_TRUE(client.Send("GET /log HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(client.ReadHead());
  for (int read = 0; read < kPieces; ++read) {
    ASSERT_TRUE(client.ReadUntil("piece " + std::to_string(read) + "\n"));
    int ahead = 0;
    RunOnLoop([&] { ahead = produced - read - 1; });
    // What the socket holds (its buffers, ~208 KiB each way by default) and one piece more.
    EXPECT_LE(ahead, 8) << "produced without the client reading, after piece " << read;
  }
  ASSERT_TRUE(client.ReadUntil("0\r\n\r\n"));
  RunOnLoop([&] { EXPECT_EQ(produced, kPieces); });
  std::optional<Response> next = client.Get("/next");  // the connection goes on
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

}  // namespace
}  // namespace chainctl::daemon::http_test
