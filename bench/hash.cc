// bench_hash: the task cache's file hashing (common/source_hash.h), for bench/hash.sh.
//   bench_hash algos FILE        in-memory throughput of XXH3-128, SHA-256 and BLAKE2b-512
//                                (OpenSSL) over FILE's bytes, and of reading FILE (page cache)
//                                with 64 KiB reads, 1 MiB reads and mmap, each hashed (XXH3)
//   bench_hash tree DIR MEMO     HashSources(DIR, {"**"}) with the memo file MEMO (loaded if
//                                there, saved after): seconds, files, bytes, files read
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/file_hash.h"
#include "common/read_file.h"
#include "common/source_hash.h"

namespace {

using chainctl::Hash128;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Best of 3 passes of `hash` over the bytes: MB/s.
template <typename F>
double Rate(uint64_t bytes, F hash) {
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    auto start = std::chrono::steady_clock::now();
    hash();
    best = std::min(best, Seconds(start));
  }
  return static_cast<double>(bytes) / 1e6 / best;
}

void Evp(const EVP_MD* md, const std::string& bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &length, md, nullptr);
}

void ReadHash(const std::string& path, size_t buffer_size) {
  std::vector<char> buffer(buffer_size);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  Hash128 hash;
  uint64_t bytes = 0;
  chainctl::HashFd(fd, buffer.data(), buffer.size(), &hash, &bytes);
  close(fd);
}

void MapHash(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  fstat(fd, &st);
  Hash128 hash;
  chainctl::HashFdMapped(fd, static_cast<uint64_t>(st.st_size), &hash);
  close(fd);
}

int Algos(const std::string& path) {
  std::string bytes;
  if (int error = chainctl::ReadFileBytes(path, &bytes); error != 0) {
    std::fprintf(stderr, "bench_hash: %s: %s\n", path.c_str(), std::strerror(error));
    return 1;
  }
  uint64_t n = bytes.size();
  double xxh = Rate(n, [&] { chainctl::HashBytes(bytes); });
  double sha = Rate(n, [&] { Evp(EVP_sha256(), bytes); });
  double blake = Rate(n, [&] { Evp(EVP_blake2b512(), bytes); });
  std::printf(
      "in memory, %.0f MB: XXH3-128 %.0f MB/s, SHA-256 %.0f MB/s (%.1fx slower), "
      "BLAKE2b-512 %.0f MB/s (%.1fx slower)\n",
      static_cast<double>(n) / 1e6, xxh, sha, xxh / sha, blake, xxh / blake);
  double small = Rate(n, [&] { ReadHash(path, 64 << 10); });
  double large = Rate(n, [&] { ReadHash(path, chainctl::kHashReadBuffer); });
  double mapped = Rate(n, [&] { MapHash(path); });
  std::printf(
      "from the page cache, XXH3-128: read 64 KiB %.0f MB/s, read 1 MiB %.0f MB/s, "
      "mmap %.0f MB/s\n",
      small, large, mapped);
  return 0;
}

int Tree(const std::string& dir, const std::string& memo_file) {
  chainctl::HashMemo memo;
  std::string why = "-";
  bool loaded = memo.Load(memo_file, &why);
  chainctl::SourcesDigest digest;
  std::string err;
  auto start = std::chrono::steady_clock::now();
  bool ok = chainctl::HashSources(dir, {"**"}, &memo, &digest, &err);
  double seconds = Seconds(start);
  if (!ok) {
    std::fprintf(stderr, "bench_hash: %s\n", err.c_str());
    return 1;
  }
  if (!memo.Save(memo_file, &err)) std::fprintf(stderr, "bench_hash: %s\n", err.c_str());
  std::printf("%.4f s %llu files %llu bytes %llu read %s memo_loaded=%d memo_entries=%zu\n",
              seconds, static_cast<unsigned long long>(digest.files),
              static_cast<unsigned long long>(digest.bytes),
              static_cast<unsigned long long>(digest.files_read), digest.digest.Hex().c_str(),
              loaded ? 1 : 0, memo.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "algos") return Algos(args[1]);
  if (args.size() == 3 && args[0] == "tree") return Tree(args[1], args[2]);
  std::fprintf(stderr, "usage: bench_hash algos FILE | bench_hash tree DIR MEMO\n");
  return 2;
}
