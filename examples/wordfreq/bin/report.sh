#!/bin/sh
# Input: {"count": {...}, "stats": {...}}. Output: {"markdown": "..."}.
set -eu
python3 -c '
import json, sys
d = json.load(sys.stdin)
lines = ["# Word frequencies", "",
         "%d files, %d bytes, %d distinct words." % (d["stats"]["files"], d["stats"]["bytes"], d["count"]["distinct"]),
         "", "| word | count |", "|---|---|"]
lines += ["| %s | %d |" % (w, n) for w, n in d["count"]["top"]]
json.dump({"markdown": "\n".join(lines) + "\n"}, sys.stdout)
'
