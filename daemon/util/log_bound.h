// A task's stderr log kept within a size on disk (issue 15, item 5: a task wrote 200 MB of
// stderr as is), and read back around what was dropped.
//
// The task writes its log itself (its stderr is the file: no copy through chaind), so the
// bound is kept from outside, by BoundLog, which ProcessRunner calls every kLogCheckMs while
// the task runs and once at its end: the disk a log takes is at most its bound plus what the
// task writes between two checks. Its first half and last half are kept (the start says what
// the task was doing, the end how it ended): the bytes between are punched out of the file
// (fallocate PUNCH_HOLE, whole 4 KiB blocks), so the file keeps its size and the task's write
// offset, and the hole reads as zeros. Where the file system cannot punch holes, the file is
// cut to its first half instead: the task's next write leaves a hole there too, but what it
// wrote before that is lost.
//
// Readers skip holes with LogData: a hole is where bytes were dropped.
#pragma once

#include <cstdint>
#include <string>

namespace chainctl::daemon {

inline constexpr uint64_t kLogCheckMs = 250;

// Keeps the log at `path` within about `max_bytes` of disk (0: no bound), as above. Returns the
// bytes it freed (0 when within the bound, or when the file cannot be opened or changed: a log
// is not worth failing a task for).
uint64_t BoundLog(const std::string& path, uint64_t max_bytes);

// The data of `fd` at or after `offset`, before `end`: [*from, *to), with *from == *to == end
// when there is none. Bytes [offset, *from) are a hole: dropped by BoundLog. On file systems
// without SEEK_DATA the whole file is data.
void LogData(int fd, uint64_t offset, uint64_t end, uint64_t* from, uint64_t* to);

// The offset from which the log of `size` bytes holds at most `max_bytes` of data, holes not
// counted: 0 when all its data fits (a log bounded to 2 MiB is read whole, head and tail).
uint64_t StartOfLastData(int fd, uint64_t size, uint64_t max_bytes);

// What a reader shows where `bytes` of a log were dropped, as a line of its own.
std::string DroppedMarker(uint64_t bytes);

}  // namespace chainctl::daemon
