// Replays inputs through a libFuzzer target without libFuzzer: linked with one *_fuzzer.cc
// into <target>_replay, which ctest runs on tests/fuzz/corpus/<target>/ in every build
// (fuzz_replay.<target>), so the kept corpus is checked by gcc, and by ASan + UBSan in the
// sanitizer build, without clang.
//   <target>_replay PATH...   each PATH a file, or a folder whose files are all run
// Fails if a PATH is missing or a folder holds no file. Each input is handed over in a heap
// buffer of exactly its size, as libFuzzer does, so that ASan sees a read past its end. If
// an input crashes the target, its path is printed.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// The sanitizers' runtime, when linked: calls back before a sanitizer ends the process.
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)(void));

namespace {

namespace fs = std::filesystem;

// The input being run, for the crash message; set only between reading and running it.
const char* current_input = nullptr;

void SayCurrentInput() {
  if (current_input == nullptr) return;
  const char prefix[] = "replay: crashed on input ";
  (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
  (void)!write(STDERR_FILENO, current_input, std::strlen(current_input));
  (void)!write(STDERR_FILENO, "\n", 1);
}

void OnCrashSignal(int signal) {
  SayCurrentInput();
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// SIGILL is __builtin_trap (a target's contract check), SIGABRT an assert; the sanitizers
// report memory faults themselves, and then the death callback names the input.
void NameInputsOnCrash() {
  std::signal(SIGILL, OnCrashSignal);
  std::signal(SIGABRT, OnCrashSignal);
  if (__sanitizer_set_death_callback != nullptr) {
    __sanitizer_set_death_callback(SayCurrentInput);
  } else {
    std::signal(SIGSEGV, OnCrashSignal);
    std::signal(SIGBUS, OnCrashSignal);
    std::signal(SIGFPE, OnCrashSignal);
  }
}

bool RunFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    std::fprintf(stderr, "replay: %s: cannot read\n", path.c_str());
    return false;
  }
  auto data = std::make_unique<uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), data.get());
  std::string name = path.string();
  current_input = name.c_str();
  LLVMFuzzerTestOneInput(data.get(), bytes.size());
  current_input = nullptr;
  return true;
}

// Runs `arg` (a file, or every file of a folder, in name order); adds to *count.
bool RunPath(const char* arg, size_t* count) {
  fs::path path(arg);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (!RunFile(path)) return false;
    ++*count;
    return true;
  }
  if (!fs::is_directory(path, ec)) {
    std::fprintf(stderr, "replay: %s: no such file or folder\n", arg);
    return false;
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    if (entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  if (ec) {
    std::fprintf(stderr, "replay: %s: %s\n", arg, ec.message().c_str());
    return false;
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: %s: the folder holds no input\n", arg);
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    if (!RunFile(file)) return false;
    ++*count;
  }
  std::printf("replay: %zu inputs from %s\n", files.size(), arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  NameInputsOnCrash();
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    if (!RunPath(argv[i], &count)) return 1;
  }
  std::printf("replay: ran %zu inputs, none crashed\n", count);
  return 0;
}
