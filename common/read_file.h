// Reading a whole file with read(2). Not through std::istreambuf_iterator or a stream handed to a
// parser: libstdc++'s filebuf throws std::ios_base::failure from a failed read(2) (EIO; ESRCH from
// /proc/PID/environ of a process that exits meanwhile), and nothing catches it there.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace chainctl {

// Reads the regular file `path` (a /proc file is one) into `*content` unless it is longer than
// `limit`. Returns 0, EFBIG when it is longer (or grew longer while read), EINVAL when it is not
// a regular file, or another errno (ENOENT when there is none). Never blocks in open() on a FIFO.
int ReadFileBytes(const std::string& path, std::string* content,
                  uint64_t limit = std::numeric_limits<uint64_t>::max());

}  // namespace chainctl
