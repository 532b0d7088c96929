#include "daemon/http/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "daemon/http/wire.h"
#include "daemon/util/log.h"

namespace chainctl::daemon {
namespace {

// The kernel caps it at net.core.somaxconn.
constexpr int kBacklog = SOMAXCONN;

// Returns 0 or a negative errno.
int CheckListeningUnixSocket(int fd) {
  int value = 0;
  socklen_t length = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) < 0) return -errno;
  if (value != AF_UNIX) return UV_EINVAL;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) < 0) return -errno;
  if (value != SOCK_STREAM) return UV_EINVAL;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) < 0) return -errno;
  return value ? 0 : UV_EINVAL;
}

// Makes a listening socket at `path` whose file has mode 0600; returns it or a negative errno.
int BindPrivateSocket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) return UV_ENAMETOOLONG;
  std::memcpy(address.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // Linux gives the new file the mode of the socket's inode (less the umask): setting it
  // before bind leaves no moment where another user could connect.
  if (fchmod(fd, 0600) < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0) {
    int error = -errno;
    close(fd);
    return error;
  }
  if (listen(fd, kBacklog) < 0) {
    int error = -errno;
    unlink(path.c_str());
    close(fd);
    return error;
  }
  return fd;
}

}  // namespace

// A listening socket, polled for readability; freed by OnListenerClosed, after libuv is done
// with it. Connections are accepted here (accept4), not by libuv's uv_listen: out of
// descriptors, libuv closes waiting clients unanswered, where this answers them 503.
struct HttpServer::Listener {
  uv_poll_t poll;
  int fd = -1;  // the listening socket, owned: closed by OnListenerClosed
  HttpServer* server = nullptr;
  std::string path;     // the socket file Listen made, to remove; empty for ListenFd
  struct stat file {};  // of `path` when made, to remove only that file
};

HttpServer::HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler) {
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  context_.loop = loop;
  context_.limits = limits;
  context_.handler = std::move(handler);
  context_.loop_thread = std::this_thread::get_id();
  context_.on_closed = [this](HttpConnection* connection) { ConnectionClosed(connection); };
}

HttpServer::~HttpServer() {
  if (!listeners_.empty() || !connections_.empty() || resume_) {
    std::fprintf(stderr, "HttpServer destroyed with open handles: wait for Shutdown's callback\n");
    std::abort();  // libuv would use the freed handles
  }
  if (reserve_fd_ >= 0) close(reserve_fd_);
}

int HttpServer::Listen(const std::string& path) {
  if (context_.shutting_down) return UV_EINVAL;
  int fd = BindPrivateSocket(path);
  if (fd < 0) return fd;
  int rc = Adopt(fd, path);
  if (rc < 0) unlink(path.c_str());
  return rc;
}

int HttpServer::ListenFd(int fd) {
  int rc = context_.shutting_down ? UV_EINVAL : CheckListeningUnixSocket(fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return Adopt(fd, "");
}

// Serves the listening socket `fd`, which it owns from now on.
int HttpServer::Adopt(int fd, std::string path) {
  auto owned = std::make_unique<Listener>();
  Listener* listener = owned.get();
  listener->server = this;
  listener->fd = fd;
  listener->path = std::move(path);
  if (!listener->path.empty()) stat(listener->path.c_str(), &listener->file);
  int flags = fcntl(fd, F_GETFL);
  int rc = flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
  if (rc == 0) rc = uv_poll_init(context_.loop, &listener->poll, fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  listener->poll.data = listener;
  listeners_.push_back(std::move(owned));
  rc = uv_poll_start(&listener->poll, UV_READABLE, OnReadable);
  if (rc < 0) {
    listener->path.clear();  // the caller removes it
    uv_close(reinterpret_cast<uv_handle_t*>(&listener->poll), OnListenerClosed);
  }
  return rc;
}

void HttpServer::OnReadable(uv_poll_t* poll, int status, int) {
  auto* listener = static_cast<Listener*>(poll->data);
  listener->server->AcceptAll(listener, status);
}

// Accepts what waits, a bounded number per wakeup (the loop has other work). Out of
// descriptors, each waiting client is answered 503 through the reserve descriptor (Shed).
void HttpServer::AcceptAll(Listener* listener, int status) {
  context_.loop_thread = std::this_thread::get_id();  // Listen may have run elsewhere
  if (context_.shutting_down) return;
  if (status < 0) return PauseAccepting("polling the socket: " + std::string(uv_strerror(status)));
  for (int i = 0; i < 64; ++i) {
    int fd = accept4(listener->fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      Accept(fd);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else if (errno == EMFILE || errno == ENFILE) {
      if (!Shed(listener)) return PauseAccepting("out of file descriptors, even the reserve");
    } else if (errno != EINTR && errno != ECONNABORTED) {
      return PauseAccepting("accept: " + std::string(std::strerror(errno)));
    }
  }
}

// Answers one waiting client 503 on the reserve descriptor, then takes the reserve back.
// False if there is no reserve (another thread took the descriptor it freed).
bool HttpServer::Shed(Listener* listener) {
  if (reserve_fd_ < 0) reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (reserve_fd_ < 0) return false;
  close(reserve_fd_);
  int fd = accept4(listener->fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) {
    static const std::string kAnswer = [] {
      HttpResponse r = JsonError(503, "out_of_file_descriptors",
                                 "chaind has no file descriptor left for this connection; retry "
                                 "later");
      r.headers.emplace_back("Retry-After", "1");
      return ResponseHead(r, BodyFraming::kLength, ConnectionHeader::kClose) + r.body;
    }();
    // What the client sent is read first: closing with unread data would reset the
    // connection, and the client might not see the answer.
    char sink[4096];
    for (int k = 0; k < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++k) {
    }
    ssize_t sent = send(fd, kAnswer.data(), kAnswer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent;  // a fresh socket's buffer takes it; if not, the client sees the close
    close(fd);
    ++context_.stats.refused_no_fd;
    if (LogDue()) {
      Log(LogLevel::kWarning, "out of file descriptors (" + std::to_string(getdtablesize()) +
                                  " allowed): a new connection was answered 503 (" +
                                  std::to_string(context_.stats.refused_no_fd) + " so far)");
    }
  }
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return true;
}

// Stops polling the listeners for 100 ms (an error that would repeat at once), logged.
void HttpServer::PauseAccepting(const std::string& why) {
  if (resume_ || context_.shutting_down) return;
  if (LogDue()) Log(LogLevel::kWarning, "not accepting connections for 100 ms: " + why);
  for (auto& listener : listeners_) uv_poll_stop(&listener->poll);
  resume_ = new uv_timer_t;
  uv_timer_init(context_.loop, resume_);
  resume_->data = this;
  uv_timer_start(
      resume_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<HttpServer*>(timer->data);
        self->CloseResumeTimer();
        for (auto& listener : self->listeners_) {
          uv_poll_start(&listener->poll, UV_READABLE, OnReadable);
        }
      },
      100, 0);
}

// At most one warning a second about descriptors: exhaustion can last.
bool HttpServer::LogDue() {
  uint64_t now = uv_now(context_.loop);
  if (warned_ms_ != 0 && now - warned_ms_ < 1000) return false;
  warned_ms_ = now;
  return true;
}

void HttpServer::CloseResumeTimer() {
  if (!resume_) return;
  uv_close(reinterpret_cast<uv_handle_t*>(resume_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  resume_ = nullptr;
}

// A connection on `fd` (accepted, non-blocking, close-on-exec): checked and served, or refused.
void HttpServer::Accept(int fd) {
  std::shared_ptr<HttpConnection> connection = HttpConnection::Create(&context_);
  connections_.emplace(connection.get(), connection);
  ++context_.stats.connections;
  if (uv_pipe_open(reinterpret_cast<uv_pipe_t*>(connection->stream()), fd) < 0) {
    close(fd);
    connection->Close();
    return;
  }
  ucred peer{};
  socklen_t length = sizeof(peer);
  if (getsockopt(connection->fd(), SOL_SOCKET, SO_PEERCRED, &peer, &length) < 0) {
    ++context_.stats.refused_peer;
    connection->Refuse(JsonError(403, "forbidden", "the client's credentials are unknown"));
    return;
  }
  if (peer.uid != getuid()) {
    ++context_.stats.refused_peer;
    connection->Serve(peer.uid, peer.pid,
                      JsonError(403, "forbidden", "clients of another user are refused",
                                {{"peer_uid", peer.uid}}));
    return;
  }
  if (context_.stats.open_connections >= context_.limits.max_connections) {
    ++context_.stats.refused_busy;
    HttpResponse busy = JsonError(503, "too_many_connections",
                                  "the daemon serves too many connections; retry later",
                                  {{"limit", context_.limits.max_connections}});
    busy.headers.emplace_back("Retry-After", "1");  // the request was not read: safe to send again
    connection->Refuse(busy);
    return;
  }
  connection->Serve(peer.uid, peer.pid);
}

void HttpServer::Shutdown(std::function<void()> done) {
  shutdown_done_ = std::move(done);
  if (!context_.shutting_down) {
    context_.shutting_down = true;
    CloseResumeTimer();
    for (auto& listener : listeners_) CloseListener(listener.get());
    // A snapshot: draining runs callbacks of aborted streams, which may do anything.
    std::vector<std::shared_ptr<HttpConnection>> connections;
    for (auto& entry : connections_) connections.push_back(entry.second);
    for (auto& connection : connections) connection->Drain();
  }
  MaybeFinishShutdown();
}

void HttpServer::CloseListener(Listener* listener) {
  uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(&listener->poll);
  if (uv_is_closing(handle)) return;
  struct stat now {};
  if (!listener->path.empty() && stat(listener->path.c_str(), &now) == 0 &&
      now.st_dev == listener->file.st_dev && now.st_ino == listener->file.st_ino) {
    unlink(listener->path.c_str());
  }
  uv_close(handle, OnListenerClosed);
}

void HttpServer::OnListenerClosed(uv_handle_t* handle) {
  auto* listener = static_cast<Listener*>(handle->data);
  HttpServer* server = listener->server;
  if (listener->fd >= 0) close(listener->fd);
  std::erase_if(server->listeners_, [listener](const auto& l) { return l.get() == listener; });
  server->MaybeFinishShutdown();
}

void HttpServer::ConnectionClosed(HttpConnection* connection) {
  connections_.erase(connection);
  MaybeFinishShutdown();
}

void HttpServer::MaybeFinishShutdown() {
  if (!context_.shutting_down || !listeners_.empty() || !connections_.empty()) return;
  std::function<void()> done = std::move(shutdown_done_);
  shutdown_done_ = nullptr;
  if (done) done();
}

}  // namespace chainctl::daemon
