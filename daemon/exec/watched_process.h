// One spawned process (daemon/exec/process_spawn.h) watched on the libuv loop: the core that the
// local runner's attempts (ProcessRunner::Attempt, process_attempt.h) and the worker pool's
// workers (WorkerPool::Worker, pool_worker.h) share. It owns the process's descriptors, its
// libuv handles and its cgroup, and decides when the object is freed; a derived class says what
// the process is for (what it writes to stdin, what stdout means, what the timer counts down to)
// through the hooks below.
//
// Threads: the loop's only. Process requirements: as ProcessRunner (process_runner.h): SIGPIPE
// ignored, nobody else waits for "any child".
//
// What it watches, from Watch on:
//   exit    the pidfd, polled. Once it is readable, the group and the descendants that left it
//           are SIGKILLed (KillAll: before the leader is reaped, so the group id cannot have
//           been reused) and the leader is reaped with wait4 (WNOHANG: one that is not a zombie
//           after all is polled on); then the poll is closed and OnReaped runs.
//   stdout  read as it comes into the owner's read buffer: OnStdout for each read. At EOF or
//           a read error stdout is closed, then OnStdoutEnded runs.
//   stdin   a pipe that the derived class writes through stdin_stream(); nothing is written
//           here. None if the process has no stdin pipe.
//   timer   one one-shot timer, open from construction: StartTimer, StopTimer; OnTimer when it
//           fires.
// Hooks run on the loop from libuv callbacks, never from inside a member function, and never
// once the object is retired.
//
// Lifetime. Created with new; nobody deletes it. Each libuv handle counts as open from its init
// until its close callback. Retire closes them all and releases the cgroup (killing what is left
// in it); the last close callback (a later loop iteration) then deletes the object, whose
// destructor closes the pidfd and the report fd. Until then, callbacks of writes cancelled by
// closing stdin may still reach it. Every object must be retired (or abandoned) once, and the
// loop must run once more after that (UV_RUN_NOWAIT is enough) before uv_loop_close.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "daemon/exec/process_spawn.h"
#include "daemon/exec/task_cgroups.h"

namespace chainctl::daemon {

class WatchedProcess {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // The size of the read buffer of Settings: one pipe buffer.
  static constexpr size_t kReadBufferSize = 64 * 1024;

  struct Settings {
    uv_loop_t* loop = nullptr;
    // kReadBufferSize bytes, shared by all the processes of one owner (one read at a time on
    // the loop); it must outlive their reads.
    char* read_buffer = nullptr;
    std::string workdir;  // the process's CHAIN_WORKDIR, which its descendants inherit
    SteadyTime spawned;   // when it was (or is about to be) spawned
    // A process that lives long (a worker): pids may have wrapped since its spawn whatever its
    // age, so KillAll looks at every process for its escapees (else only after 10 s).
    bool lives_long = false;
  };

  explicit WatchedProcess(Settings settings);  // the timer is open from here
  virtual ~WatchedProcess();                   // closes the pidfd and the report fd
  WatchedProcess(const WatchedProcess&) = delete;
  WatchedProcess& operator=(const WatchedProcess&) = delete;

  // Takes over `process` (its pid and all its descriptors) and `cgroup` (the process's own,
  // task_cgroups.h): a pipe for stdin if process.stdin_fd >= 0, one for stdout, which is read
  // from now on, and the pidfd's poll. Returns 0, or a libuv error: then the process is killed
  // and reaped at once (KillAndReap) and only the timer is left open. Either way each
  // descriptor is a handle's or closed.
  int Watch(const SpawnedProcess& process, TaskCgroups::Group cgroup);
  // For an owner that goes away: kills and reaps the process if it still runs (waiting), then
  // Retire. No hook runs.
  void Abandon();

  // Only while the leader is unreaped: until then its pid, the group's id, cannot be reused.
  void SignalGroup(int sig) const;

  pid_t pid() const { return pid_; }       // the group leader until reaped (-1 before and after)
  bool exited() const { return exited_; }  // reaped
  bool retired() const { return retired_; }
  SteadyTime spawned() const { return spawned_; }
  // The leader's resident memory in KiB (/proc/PID/statm); 0 once reaped or if unknown.
  uint64_t ResidentKb() const;

 protected:
  // SIGKILLs the group and the descendants that left it: all of its cgroup, or without one
  // those KillEscapees (orphans.h) finds. Only while the leader is unreaped.
  void KillAll();
  // KillAll, then reaps the leader, waiting (a killed process dies at once unless stuck in the
  // kernel). Nothing if it is reaped already.
  void KillAndReap();
  // The process is over: every handle is closed and the cgroup released; no hook runs any more
  // and the object deletes itself once the close callbacks have run. Once.
  void Retire();

  void StartTimer(uint64_t ms);
  void StopTimer();
  void CloseStdin();   // cancels the writes in flight (their callbacks come with UV_ECANCELED)
  void CloseStdout();  // no more OnStdout nor OnStdoutEnded
  bool stdin_open() const { return stdin_open_; }
  bool stdout_open() const { return stdout_open_; }
  uv_stream_t* stdin_stream() { return reinterpret_cast<uv_stream_t*>(&stdin_); }
  size_t stdin_write_queue_size() const { return stdin_.write_queue_size; }

  // Once reaped: its status (nullopt if something else in the process reaped it), user +
  // system CPU seconds of it and its waited-for children, and its peak RSS in KiB.
  std::optional<int> wait_status() const { return wait_status_; }
  double cpu_s() const;
  int64_t max_rss_kb() const { return usage_.ru_maxrss; }
  // What the spawn helper wrote on its report fd (ReadSpawnReport): why it could not run the
  // program, or "" (also without a helper). Once the process has exited.
  std::string SpawnReport() const;

 private:
  virtual void OnStdout(const char* data, size_t size) = 0;
  virtual void OnStdoutEnded() = 0;  // stdout is closed already
  virtual void OnReaped() = 0;       // exited() is true, the poll is closed
  virtual void OnTimer() = 0;

  static void OnExit(uv_poll_t* poll, int status, int events);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnTimerFired(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);

  int OpenPipe(uv_pipe_t* pipe, bool* open, int fd);
  int StartPolling();
  void Reap();
  void CloseHandle(uv_handle_t* handle, bool* open);

  uv_loop_t* loop_;
  char* read_buffer_;
  std::string workdir_;
  SteadyTime spawned_;
  bool lives_long_;
  TaskCgroups::Group cgroup_;
  pid_t pid_ = -1;
  int pidfd_ = -1;      // closed by the destructor, after the poll handle is closed
  int report_fd_ = -1;  // the spawn helper's (SpawnedProcess); closed by the destructor
  bool exited_ = false;
  std::optional<int> wait_status_;
  rusage usage_{};
  bool retired_ = false;
  int open_handles_ = 0;  // initialised handles whose close callback has not run
  bool timer_open_ = false, exit_poll_open_ = false, stdout_open_ = false, stdin_open_ = false;
  uv_timer_t timer_{};
  uv_poll_t exit_poll_{};
  uv_pipe_t stdout_{};
  uv_pipe_t stdin_{};
};

}  // namespace chainctl::daemon
