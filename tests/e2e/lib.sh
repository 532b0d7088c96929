# Shared by the end-to-end scripts (sourced, not run): pass/fail counting.
passed=0 failed=0

check() {  # check NAME COMMAND...: the command must succeed
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name" >&2
  fi
}

# Prints the closing line ctest and CI read, and fails if anything failed.
finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}
