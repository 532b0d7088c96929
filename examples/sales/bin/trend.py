#!/usr/bin/python3
"""The linear trend of the daily revenue (least squares): revenue per day gained per day."""
import json
import sys

import numpy as np

days = json.load(sys.stdin)["days"]
revenue = np.array([d["revenue"] for d in days])
slope, intercept = np.polyfit(np.arange(len(revenue)), revenue, 1)
json.dump({"per_day": round(float(slope), 3), "start": round(float(intercept), 2),
           "mean": round(float(revenue.mean()), 2)}, sys.stdout)
