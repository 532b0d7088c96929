#include "common/chain/load.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "common/chain/internal.h"
#include "common/json_pointer.h"

namespace chainctl {
namespace internal {

void Reporter::At(const std::string& pointer, std::string message) {
  if (doc_.reported.contains(pointer)) return;
  out_->push_back({doc_.file, doc_.ValuePos(pointer), PointerToFieldPath(pointer, &doc_.root),
                   std::move(message)});
}

void Reporter::AtKey(const std::string& pointer, std::string message) {
  if (doc_.reported.contains(pointer)) return;
  out_->push_back({doc_.file, doc_.KeyPos(pointer), PointerToFieldPath(pointer, &doc_.root),
                   std::move(message)});
}

}  // namespace internal

std::optional<Chain> ParseChain(std::string_view text, std::string_view file_name,
                                const LoadOptions& options, Diagnostics* diags, bool* malformed) {
  Diagnostics found;
  SourceDoc doc;
  doc.file = std::string(file_name);
  bool readable = ParseSourceDoc(text, options.format, options.limits, &doc, &found);
  if (malformed) *malformed = !readable;
  if (!readable) {
    SortDiagnostics(&found);
    diags->insert(diags->end(), found.begin(), found.end());
    return std::nullopt;
  }
  internal::Reporter report(doc, &found);
  internal::CheckFileSchema(doc, &report);
  Chain chain = internal::DecodeChain(doc.root, &report);
  if (doc.root.is_object()) internal::CheckChain(&chain, options, &report);
  if (!found.empty()) {
    SortDiagnostics(&found);
    diags->insert(diags->end(), found.begin(), found.end());
    return std::nullopt;
  }
  return chain;
}

namespace {

// Reads at most `limit` + 1 bytes, so that an oversized input is detected
// without reading all of it.
bool ReadBounded(std::istream& in, size_t limit, std::string* out) {
  out->clear();
  char buffer[65536];
  while (out->size() <= limit) {
    in.read(buffer, sizeof buffer);
    std::streamsize got = in.gcount();
    if (got <= 0) break;
    out->append(buffer, static_cast<size_t>(got));
  }
  return !in.bad();
}

}  // namespace

std::optional<Chain> LoadChainFile(const std::string& path, LoadOptions options,
                                   Diagnostics* diags) {
  std::string text;
  bool ok;
  int saved_errno = 0;
  if (path == "-") {
    ok = ReadBounded(std::cin, options.limits.max_bytes, &text);
    saved_errno = errno;
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      diags->push_back({path, {}, "", "is a directory, not a chain file"});
      return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    saved_errno = errno;
    ok = in.is_open() && ReadBounded(in, options.limits.max_bytes, &text);
    if (options.base_dir.empty()) {
      options.base_dir = std::filesystem::path(path).parent_path().string();
    }
  }
  if (!ok) {
    diags->push_back({path, {}, "", std::string("cannot read: ") + std::strerror(saved_errno)});
    return std::nullopt;
  }
  return ParseChain(text, path, options, diags);
}

}  // namespace chainctl
