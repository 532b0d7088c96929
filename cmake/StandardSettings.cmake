# Warnings and sanitizers for every target of the project, through one
# INTERFACE target (ccache's StandardWarnings.cmake habit).
add_library(chainctl_options INTERFACE)

target_compile_options(chainctl_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wimplicit-fallthrough -Wformat=2)
if(CHAINCTL_WERROR)
  target_compile_options(chainctl_options INTERFACE -Werror)
endif()

if(CHAINCTL_SANITIZE)
  target_compile_options(chainctl_options INTERFACE
    -fsanitize=${CHAINCTL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(chainctl_options INTERFACE -fsanitize=${CHAINCTL_SANITIZE})
endif()

if(CHAINCTL_FUZZ)
  target_compile_options(chainctl_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined)
  target_link_options(chainctl_options INTERFACE -fsanitize=address,undefined)
endif()

# Precompiled headers: nlohmann/json and the standard headers that nearly every file of a library
# includes, parsed once per target instead of once per file (about 1 s less per file at -O2 -g1;
# bench/README.md "Build"). Not for headers only a few files use (CLI11 made cli's other files
# slower) nor for the tests (no gain measured). -DCHAINCTL_PCH=OFF builds without them, which
# also checks that every file includes what it uses.
option(CHAINCTL_PCH "Precompile the heavy headers shared by a target's files" ON)
function(chainctl_precompile target)
  if(CHAINCTL_PCH)
    target_precompile_headers(${target} PRIVATE ${ARGN})
  endif()
endfunction()
set(CHAINCTL_PCH_STD <algorithm> <cstdint> <functional> <map> <memory> <optional> <string>
    <string_view> <utility> <vector>)
