#!/usr/bin/env python3
"""Input: {"files": [{"path", "bytes"}]}. Output: {"words": [...], "total": N}."""
import json
import re
import sys

files = json.load(sys.stdin)["files"]
words = []
for f in files:
    with open(f["path"], encoding="utf-8", errors="replace") as text:
        words.extend(w.lower() for w in re.findall(r"[A-Za-z']+", text.read()))
json.dump({"words": words, "total": len(words)}, sys.stdout)
