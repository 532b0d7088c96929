#!/usr/bin/python3
"""Days whose revenue is more than two standard deviations from a 14-day rolling mean."""
import json
import sys

import pandas as pd

days = pd.DataFrame(json.load(sys.stdin)["days"])
rolling = days["revenue"].rolling(14, min_periods=7)
z = (days["revenue"] - rolling.mean()) / rolling.std()
odd = days[z.abs() > 2]
json.dump({"days": [{"date": d, "revenue": r} for d, r in zip(odd["date"], odd["revenue"])]},
          sys.stdout)
