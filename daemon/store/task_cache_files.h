// The file operations of the task cache (task_cache.h): listing, copying (reflink first),
// replacing a file through a temporary one and a rename, removing trees. Not for other parts.
//
// Every function blocks on file I/O (call it off the loop) and touches nothing shared: any thread.
// Errors: false (or an errno) with what failed in *err, named by path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chainctl::daemon::cache_files {

// Whether `path` may name a file below a folder: relative, `/`-separated, no empty, "." or ".."
// component, no NUL. Paths read from a manifest are checked with it before any use.
bool IsSafeRelativePath(std::string_view path);

// Makes `dir` and its missing parents (0777 less the umask). False with *err.
bool MakeDirs(const std::string& dir, std::string* err);

// The regular files below `dir` (a symlink to a file counts as a file; symlinked folders are not
// entered), as `/`-separated paths relative to it, sorted. A missing `dir` has none. False with
// *err if a folder cannot be listed.
bool ListFiles(const std::string& dir, std::vector<std::string>* files, std::string* err);

// Copies what `in` holds, from its offset 0, into the empty file `out`: FICLONE (a reflink, on
// btrfs and XFS), else copy_file_range, else read and write. False with *err (naming `what`).
bool CopyContent(int in, int out, const std::string& what, std::string* err);

// Makes the new file `dest` (it must not exist) a copy of `in` with `mode`. False with *err;
// nothing is left at `dest` then.
bool CopyToNewFile(int in, const std::string& dest, mode_t mode, std::string* err);

// Replaces (or creates) `dest` with a copy of `in` with `mode`, through a temporary file in
// dest's folder and a rename: a reader of `dest` sees the old file or the new one. The folder
// must exist. False with *err; no temporary file is left then.
bool ReplaceFile(int in, const std::string& dest, mode_t mode, std::string* err);

// Writes `bytes` to `temp_dir`/<unique> and renames it to `dest` (same file system). False with
// *err; nothing is left behind then.
bool WriteFileVia(const std::string& temp_dir, const std::string& dest, std::string_view bytes,
                  std::string* err);

// Reads the regular file `name` below the folder `dirfd` into *content, up to `limit` bytes.
// Returns 0 or an errno (EFBIG: longer than `limit`; EINVAL: not a regular file).
int ReadAt(int dirfd, const std::string& name, std::string* content, uint64_t limit);

// Bytes of the regular files below `path` (or of `path` itself), symlinks not followed.
uint64_t TreeBytes(const std::string& path);

// Removes `path` and everything below it; what cannot be removed stays (no error).
void RemoveTree(const std::string& path);

// The names in folder `dir` but "." and ".."; none if it cannot be read.
std::vector<std::string> ListDir(const std::string& dir);

// "what: strerror(error)".
std::string ErrnoText(const std::string& what, int error);

}  // namespace chainctl::daemon::cache_files
