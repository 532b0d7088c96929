// Reading a whole file with read(2). Not through std::istreambuf_iterator or a stream handed to a
// parser: libstdc++'s filebuf throws std::ios_base::failure from a failed read(2) (EIO; ESRCH from
// /proc/PID/environ of a process that exits meanwhile), and nothing catches it there.
#pragma once

#include <cstddef>
#include <string>

namespace chainctl {

// Reads the whole of `path` into `out`. False with `*error` set to an errno value if it cannot
// be opened or a read fails (`out` then holds what was read).
bool ReadFileBytes(const std::string& path, std::string* out, int* error);

}  // namespace chainctl
