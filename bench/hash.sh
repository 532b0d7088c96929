#!/usr/bin/env bash
# The task cache's file hashing (common/source_hash.h) on a tree of 2,000 files (~200 MB, mixed
# sizes) in a temporary folder: bench_hash's first run (every file read) and second run (the
# memo: a stat per file) against sha256sum, xxhsum -H2 and b3sum (when installed: Debian xxhash,
# b3sum) over the same files, all in this run. Then the stat-only path on 100,000 small files, and
# one 1 GiB file against sha256sum.
# The page cache is warm (the tree was just written, and a warm-up pass reads it); where
# /proc/sys/vm/drop_caches is writable (root, no container), a cold first run is measured too.
set -euo pipefail
bench="$BUILD_DIR/bench/bench_hash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1,980 files of 1..64 KiB and 20 of 7 MB: about 200 MB.
python3 - "$tmp/tree" <<'PY'
import os, random, sys
random.seed(18)
root = sys.argv[1]
blob = os.urandom(8 << 20)
for i in range(2000):
    size = 7_000_000 if i % 100 == 0 else random.randint(1, 64) << 10
    d = os.path.join(root, f"d{i % 20}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    start = random.randint(0, len(blob) - size)
    with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
        f.write(blob[start:start + size])
PY
mb=$(du -sm --apparent-size "$tmp/tree" | cut -f1)
# HashMemo trusts no file changed in the 2 s before it was hashed (the racy-mtime rule).
sleep 2.1

now() { date +%s.%N; }
seconds_of() {  # seconds_of COMMAND...: wall seconds of one run
  local t0; t0=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $t0" | bc -l
}
over_files() { (cd "$tmp/tree" && find . -type f -print0 | sort -z | xargs -0 "$@"); }

over_files cat >/dev/null  # warm-up: the page cache holds the tree
cold=""
if sync 2>/dev/null && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
  cold=$( "$bench" tree "$tmp/tree" "$tmp/cold.memo" | cut -d' ' -f1 )
  over_files cat >/dev/null
fi
first=$("$bench" tree "$tmp/tree" "$tmp/memo")
second=$("$bench" tree "$tmp/tree" "$tmp/memo")
t1=$(cut -d' ' -f1 <<<"$first")
t2=$(cut -d' ' -f1 <<<"$second")
echo "tree: 2,000 files, $mb MB, page cache warm"
echo "  bench_hash first run  (reads): $first"
echo "  bench_hash second run (memo):  $second"
printf '  XXH3-128 first run %.0f MB/s; second run %.4f s = %.4fx of the first\n' \
  "$(echo "$mb / $t1" | bc -l)" "$t2" "$(echo "$t2 / $t1" | bc -l)"
[[ -n "$cold" ]] && printf '  cold page cache first run: %.3f s (%.0f MB/s)\n' "$cold" "$(echo "$mb / $cold" | bc -l)"
for tool in "sha256sum" "xxhsum -H2" "b3sum"; do
  command -v "${tool%% *}" >/dev/null || { echo "  $tool: not installed"; continue; }
  # shellcheck disable=SC2086
  t=$(seconds_of over_files $tool)
  printf '  %-11s %.3f s %5.0f MB/s: bench_hash first run %.2fx its time, second run %.4fx\n' \
    "$tool" "$t" "$(echo "$mb / $t" | bc -l)" "$(echo "$t1 / $t" | bc -l)" "$(echo "$t2 / $t" | bc -l)"
done

# The stat-only path: 100,000 files of 16 bytes.
python3 - "$tmp/many" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(100_000):
    d = os.path.join(root, f"d{i % 100}")
    if i < 100: os.makedirs(d)
    with open(os.path.join(d, f"f{i}"), "w") as f: f.write(f"{i:016d}")
PY
sleep 2.1
many1=$("$bench" tree "$tmp/many" "$tmp/many.memo")
many2=$("$bench" tree "$tmp/many" "$tmp/many.memo")
echo "100,000 small files, page cache warm"
echo "  first run (reads): $many1"
echo "  second run (memo): $many2"
printf '  second run %.4fx of the first\n' \
  "$(echo "$(cut -d' ' -f1 <<<"$many2") / $(cut -d' ' -f1 <<<"$many1")" | bc -l)"

# One 1 GiB file: bench_hash (a first hash: the file is read) against sha256sum, page cache warm.
mkdir "$tmp/one"
head -c $((1 << 30)) /dev/urandom >"$tmp/one/big"
cat "$tmp/one/big" >/dev/null
one=$("$bench" tree "$tmp/one" "$tmp/one.memo" | cut -d' ' -f1)
sha=$(seconds_of sha256sum "$tmp/one/big")
printf '1 GiB file, page cache warm: XXH3-128 %.3f s (%.0f MB/s), sha256sum %.3f s (%.0f MB/s): %.3fx its time\n' \
  "$one" "$(echo "1073.741824 / $one" | bc -l)" "$sha" "$(echo "1073.741824 / $sha" | bc -l)" "$(echo "$one / $sha" | bc -l)"
rm -rf "$tmp/one"

# The hash functions themselves, and read(2) against mmap, on one 256 MiB file.
head -c $((256 << 20)) /dev/urandom >"$tmp/big"
"$bench" algos "$tmp/big"
