// Helpers shared by the unit tests.
#pragma once

#include <string>

namespace chainctl::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the
// object goes away (ninja's ScopedTempDir).
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name (creating folders) and returns the full path.
  std::string WriteFile(const std::string& name, const std::string& content,
                        bool executable = false) const;

 private:
  std::string path_;
};

// The source tree's path for `relative` (e.g. "tests/fixtures/x.yaml").
std::string SourcePath(const std::string& relative);

std::string ReadFileOrDie(const std::string& path);

}  // namespace chainctl::testing
