#include "daemon/http_server.h"

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

// A listening pipe; freed by OnListenerClosed, after libuv is done with it.
struct HttpServer::Listener {
  uv_pipe_t pipe;
  HttpServer* server = nullptr;
  std::string path;     // the socket file Listen made, to remove; empty for ListenFd
  struct stat file {};  // of `path` when made, to remove only that file
};

HttpServer::HttpServer(uv_loop_t* loop, HttpLimits limits, Handler handler) {
  context_.loop = loop;
  context_.limits = limits;
  context_.handler = std::move(handler);
  context_.loop_thread = std::this_thread::get_id();
  context_.on_closed = [this](HttpConnection* connection) { ConnectionClosed(connection); };
}

HttpServer::~HttpServer() {
  if (!listeners_.empty() || !connections_.empty()) {
    std::fprintf(stderr, "HttpServer destroyed with open handles: wait for Shutdown's callback\n");
    std::abort();  // libuv would use the freed handles
  }
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
  listener->path = std::move(path);
  if (!listener->path.empty()) stat(listener->path.c_str(), &listener->file);
  uv_pipe_init(context_.loop, &listener->pipe, 0);  // cannot fail on Unix
  listener->pipe.data = listener;
  listeners_.push_back(std::move(owned));
  int rc = uv_pipe_open(&listener->pipe, fd);
  if (rc < 0) {
    close(fd);  // not attached to the handle
  } else {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener->pipe), kBacklog, OnConnection);
  }
  if (rc < 0) {
    listener->path.clear();  // the caller removes it
    uv_close(reinterpret_cast<uv_handle_t*>(&listener->pipe), OnListenerClosed);
  }
  return rc;
}

void HttpServer::OnConnection(uv_stream_t* server, int status) {
  static_cast<Listener*>(server->data)->server->Accept(server, status);
}

void HttpServer::Accept(uv_stream_t* server, int status) {
  context_.loop_thread = std::this_thread::get_id();  // Listen may have run elsewhere
  if (status < 0 || context_.shutting_down) return;   // EMFILE and the like: libuv retries
  std::shared_ptr<HttpConnection> connection = HttpConnection::Create(&context_);
  connections_.emplace(connection.get(), connection);
  ++context_.stats.connections;
  if (uv_accept(server, connection->stream()) < 0) {
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
    connection->Refuse(JsonError(503, "too_many_connections",
                                 "the daemon serves too many connections; retry later",
                                 {{"limit", context_.limits.max_connections}}));
    return;
  }
  connection->Serve(peer.uid, peer.pid);
}

void HttpServer::Shutdown(std::function<void()> done) {
  shutdown_done_ = std::move(done);
  if (!context_.shutting_down) {
    context_.shutting_down = true;
    for (auto& listener : listeners_) CloseListener(listener.get());
    // A snapshot: draining runs callbacks of aborted streams, which may do anything.
    std::vector<std::shared_ptr<HttpConnection>> connections;
    for (auto& entry : connections_) connections.push_back(entry.second);
    for (auto& connection : connections) connection->Drain();
  }
  MaybeFinishShutdown();
}

void HttpServer::CloseListener(Listener* listener) {
  uv_handle_t* handle = reinterpret_cast<uv_handle_t*>(&listener->pipe);
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
