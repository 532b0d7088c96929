#include "daemon/store/run_keys.h"

#include <charconv>

namespace chainctl::daemon {
namespace {

void AppendBigEndian(std::string* out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

std::string Prefixed(char kind, uint64_t n) {
  std::string key(1, kind);
  AppendBigEndian(&key, n, 8);
  return key;
}

}  // namespace

std::string RunId(uint64_t n) { return "run-" + std::to_string(n); }

std::optional<uint64_t> ParseRunId(std::string_view run_id) {
  constexpr std::string_view kPrefix = "run-";
  if (run_id.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view digits = run_id.substr(kPrefix.size());
  if (digits.empty() || digits[0] == '0') return std::nullopt;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

std::string RunKey(uint64_t n) { return Prefixed('r', n); }

std::string RunTaskKey(uint64_t n, std::string_view task_id) {
  std::string key = Prefixed('t', n);
  key.append(task_id);
  return key;
}

std::string RunTaskPrefix(uint64_t n) { return Prefixed('t', n); }

std::string RunOutputKey(uint64_t n, std::string_view task_id) {
  std::string key = Prefixed('o', n);
  key.append(task_id);
  return key;
}

std::string RunEventPrefix(uint64_t n) { return Prefixed('e', n); }

std::string RunEventKey(uint64_t n, uint32_t seq) {
  std::string key = RunEventPrefix(n);
  AppendBigEndian(&key, seq, 4);
  return key;
}

uint64_t RunNumberOfKey(std::string_view key) {
  if (key.size() != 9 || key[0] != 'r') return 0;
  uint64_t n = 0;
  for (size_t i = 1; i < 9; ++i) n = (n << 8) | static_cast<unsigned char>(key[i]);
  return n;
}

}  // namespace chainctl::daemon
