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

# poll SECONDS COMMAND...: runs the command every 50 ms until it succeeds (false after SECONDS)
poll() {
  local until=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < until)) || return 1
    sleep 0.05
  done
}

# For the scripts that drive a real chaind: a fresh folder $tmp (named after PREFIX) with the
# daemon's socket ($sock) and state in it, exported for chainctl; on exit the daemon is stopped
# (killed if it does not stop) and the folder removed.
daemon_setup() {  # daemon_setup PREFIX
  tmp=$(mktemp -d "/tmp/$1.XXXXXX")
  export CHAINCTL_SOCKET=$tmp/run/chaind.sock CHAINCTL_STATE_DIR=$tmp/state CHAIND
  sock=$CHAINCTL_SOCKET
  trap daemon_cleanup EXIT
}
daemon_cleanup() {
  "$CHAINCTL" daemon stop >/dev/null 2>&1
  pkill -9 -f "chaind --socket $tmp" 2>/dev/null
  rm -rf "$tmp"
}

# For the full-disk tests (after daemon_setup): a tmpfs of SIZE on DIR (made if missing) for the
# rest of the script, unmounted on exit once chaind is stopped (start_chaind's killed if it does
# not stop); exits 77 (ctest: skipped) where it cannot be mounted (needs root).
tmpfs_or_skip() {  # tmpfs_or_skip DIR SIZE WHAT
  tmpfs_dir=$1
  mkdir -p "$tmpfs_dir"
  if ! mount -t tmpfs -o "size=$2" tmpfs "$tmpfs_dir" 2> /dev/null; then
    echo "SKIP: cannot mount a tmpfs for $3 (needs root): the full-disk test did not run"
    exit 77
  fi
  trap tmpfs_cleanup EXIT
}
tmpfs_cleanup() {
  "$CHAINCTL" daemon stop > /dev/null 2>&1
  [[ -n "${chaind_pid:-}" ]] && kill -9 "$chaind_pid" 2> /dev/null && wait "$chaind_pid" 2> /dev/null
  umount "$tmpfs_dir"
  daemon_cleanup
}

# The pid of the chaind answering on $sock.
daemon_pid() {
  python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])" \
    < <(curl -s --unix-socket "$sock" http://localhost/health)
}

# Starts chaind on $sock with the given extra flags, in the background (its log appended to
# $tmp/chaind.log), and waits until it answers; sets chaind_pid. For tests that need flags or
# kill the daemon themselves (otherwise chainctl starts it on demand).
start_chaind() {  # start_chaind [FLAG...]
  "$CHAIND" --socket "$sock" --state-dir "$CHAINCTL_STATE_DIR" "$@" >> "$tmp/chaind.log" 2>&1 &
  chaind_pid=$!
  for _ in $(seq 1 500); do
    curl -sf --unix-socket "$sock" http://localhost/health > /dev/null 2>&1 && return 0
    kill -0 "$chaind_pid" 2>/dev/null || break
    sleep 0.02
  done
  echo "chaind did not start; its log:" >&2
  tail -n 20 "$tmp/chaind.log" >&2
  return 1
}

# SIGTERM to the chaind start_chaind started; true once it has exited 0 (within 30 s).
stop_chaind() {
  kill "$chaind_pid" && poll 30 bash -c "! kill -0 $chaind_pid 2> /dev/null" && wait "$chaind_pid"
}

# Calling the API directly (curl on $sock); the last answer's body is in $tmp/body.
# http METHOD PATH [curl args...]: prints "STATUS BODY"
http() {
  local method=$1 path=$2
  shift 2
  curl -s --max-time 60 --unix-socket "$sock" -X "$method" -o "$tmp/body" -w '%{http_code}' \
    "$@" "http://localhost$path"
  printf ' '
  cat "$tmp/body"
}
status_is() {  # status_is EXPECTED METHOD PATH [curl args...]
  local expected=$1
  shift
  local got
  got=$(http "$@")
  [[ "${got%% *}" == "$expected" ]] || { echo "  $*: got ${got:0:300}" >&2; return 1; }
}
json_has() {  # json_has PYTHON-EXPR: evaluated with `b` = the last body
  python3 -c "import json,sys; b=json.load(open('$tmp/body')); sys.exit(0 if ($1) else 1)" ||
    { echo "  body: $(head -c 300 "$tmp/body")" >&2; return 1; }
}
