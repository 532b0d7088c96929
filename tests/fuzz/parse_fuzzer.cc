// libFuzzer target for the chain loader: any bytes, as YAML and as JSON.
// Run with scripts/fuzz parse SECONDS.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/chain/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  chainctl::LoadOptions options;
  options.base_dir = "/nonexistent";  // executables are looked up, never run
  for (auto format : {chainctl::SourceFormat::kYaml, chainctl::SourceFormat::kJson}) {
    options.format = format;
    chainctl::Diagnostics diags;
    auto chain = chainctl::ParseChain(text, "fuzz", options, &diags);
    // Either a chain or at least one error, never both, never neither.
    if (chain.has_value() == !diags.empty()) __builtin_trap();
  }
  return 0;
}
