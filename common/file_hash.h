// Content hashes of files for the task cache (DESIGN.md §4 "Cache"): XXH3-128 (libxxhash). Not
// daemon/util/content_hash.h, the registry's SHA-256 of definitions.
//
// Why a non-cryptographic hash is fine here: the hash names file contents in a cache key, where
// the only failure is an accidental collision. For n distinct contents the chance of one is about
// n² / 2¹²⁹ (10⁹ files: ~10⁻²¹), far below a disk's undetected error rate. XXH3 is not collision
// resistant against someone who crafts inputs; but whoever can write the sources or the cache
// folder can already put any result there, so the cache does not rely on that (it is no security
// boundary; the registry's SHA-256 is for that). Measured (bench/README.md "hash", 2-core VM):
// XXH3-128 10.5 GB/s in memory, 6.6x OpenSSL's SHA-256 (with SHA-NI), 14x its BLAKE2b-512.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chainctl {

struct Hash128 {
  uint64_t high = 0;
  uint64_t low = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
  // 32 lowercase hex digits, high word first.
  std::string Hex() const;
};

Hash128 HashBytes(std::string_view bytes);

// The read buffer of HashFd: 1 MiB reads. Measured from the page cache (bench/README.md
// "hash"): as fast as 64 KiB reads and within 5% of mmap; mmap is not used because a source
// truncated while mapped would kill the process with SIGBUS.
inline constexpr size_t kHashReadBuffer = 1 << 20;

// Hashes what read(2) returns from `fd` (from its current offset) until end of file, through
// `buffer` (`size` bytes). Sets *bytes to the count read. Returns 0 or the errno of a failed read.
int HashFd(int fd, char* buffer, size_t size, Hash128* out, uint64_t* bytes);

// The same through mmap(2) of `length` bytes (the file's size): for the benchmark's comparison.
int HashFdMapped(int fd, uint64_t length, Hash128* out);

}  // namespace chainctl
