// One chaind per state folder and per socket: the lock on STATE_DIR/chaind.lock, and the socket
// path made ready unless a live chaind answers there. Failures are described in *err.
#pragma once

#include <string>

namespace chainctl::daemon {

// Holds an exclusive lock on STATE_DIR/chaind.lock for the daemon's life, so that a second
// chaind on the same state directory refuses to start. A POSIX record lock (fcntl F_SETLK), not
// flock: it belongs to chaind's process, so it goes the moment chaind dies, even while a child
// it was spawning still holds a copy of the descriptor (a task moving itself into its cgroup
// between clone and exec takes milliseconds; a flock would be held that long, and a chaind
// restarted at once after a kill -9 would find the folder "in use").
class StateLock {
 public:
  StateLock() = default;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();

  // Takes the lock and writes chaind's pid into the file; false if it cannot, or if another
  // process (its pid read from the file) holds it.
  bool Acquire(const std::string& state_dir, std::string* err);

 private:
  int fd_ = -1;
};

// Makes the socket's folder and clears a stale socket file (logged); refuses if a
// live daemon answers there.
bool PrepareSocketPath(const std::string& path, std::string* err);

}  // namespace chainctl::daemon
