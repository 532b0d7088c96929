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
