# Script mode: writes OUT, a C++ file defining `const std::string_view SYMBOL`
# with the contents of IN as a sequence of hex bytes (any content is safe).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
math(EXPR size "${hex_len} / 2")
file(WRITE ${OUT}
  "// Generated from ${IN}; do not edit.\n"
  "#include <string_view>\n"
  "namespace chainctl::embedded {\n"
  "static const char kData[] = {${bytes} 0};\n"
  "extern const std::string_view ${SYMBOL}(kData, ${size});\n"
  "}  // namespace chainctl::embedded\n")
