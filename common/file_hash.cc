#include "common/file_hash.h"

#include <sys/mman.h>
#include <unistd.h>
// XXH3_state_t on the stack (its layout is stable since xxHash 0.8.0).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cerrno>
#include <cstdio>

namespace chainctl {
namespace {

Hash128 FromXxh(XXH128_hash_t h) { return Hash128{h.high64, h.low64}; }

}  // namespace

std::string Hash128::Hex() const {
  char text[33];
  std::snprintf(text, sizeof(text), "%016llx%016llx", static_cast<unsigned long long>(high),
                static_cast<unsigned long long>(low));
  return text;
}

Hash128 HashBytes(std::string_view bytes) {
  return FromXxh(XXH3_128bits(bytes.data(), bytes.size()));
}

int HashFd(int fd, char* buffer, size_t size, Hash128* out, uint64_t* bytes) {
  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  *bytes = 0;
  for (;;) {
    ssize_t n = read(fd, buffer, size);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    XXH3_128bits_update(&state, buffer, static_cast<size_t>(n));
    *bytes += static_cast<uint64_t>(n);
  }
  *out = FromXxh(XXH3_128bits_digest(&state));
  return 0;
}

int HashFdMapped(int fd, uint64_t length, Hash128* out) {
  if (length == 0) {
    *out = HashBytes({});
    return 0;
  }
  void* map = mmap(nullptr, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (map == MAP_FAILED) return errno;
  *out = FromXxh(XXH3_128bits(map, length));
  munmap(map, length);
  return 0;
}

}  // namespace chainctl
