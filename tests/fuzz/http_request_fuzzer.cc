// libFuzzer target for chaind's request parser: any bytes, fed whole and in
// pieces split at the first input byte's value. Run with scripts/fuzz http SECONDS.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/http/request_parser.h"

namespace {

using chainctl::daemon::HttpLimits;
using chainctl::daemon::HttpRequestParser;

// Feeds `data` in pieces of `step` bytes; requests are taken as they come.
void Feed(std::string_view data, size_t step, const HttpLimits& limits) {
  HttpRequestParser parser(&limits);
  while (!data.empty()) {
    std::string_view piece = data.substr(0, step);
    size_t consumed = 0;
    HttpRequestParser::Result result = parser.Parse(piece, &consumed);
    if (consumed > piece.size()) __builtin_trap();
    if (result == HttpRequestParser::Result::kError) {
      if (parser.error().status < 400) __builtin_trap();
      return;
    }
    if (result == HttpRequestParser::Result::kRequest) {
      if (parser.TakeRequest().body.size() > limits.max_body_bytes) __builtin_trap();
    } else if (consumed != piece.size()) {
      __builtin_trap();  // kNeedMore uses every byte given
    }
    data.remove_prefix(consumed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  HttpLimits limits;
  limits.max_header_bytes = 1024;  // small limits reach the limit paths
  limits.max_body_bytes = 512;
  Feed(data, data.size() ? data.size() : 1, limits);
  Feed(data, size ? 1 + bytes[0] % 16 : 1, limits);
  return 0;
}
