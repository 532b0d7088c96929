#!/usr/bin/python3
"""The linear trend of the daily revenue (least squares): revenue per day gained per day."""
import json
import os
import sys

import numpy as np


def fit(revenue):
    return np.polyfit(np.arange(len(revenue)), revenue, 1)


fit(np.array([1.0, 2.0, 4.0]))  # once on a sample before the input comes (numpy's linalg)

days = json.load(sys.stdin)["days"]
revenue = np.array([d["revenue"] for d in days])
slope, intercept = fit(revenue)
json.dump({"per_day": round(float(slope), 3), "start": round(float(intercept), 2),
           "mean": round(float(revenue.mean()), 2)}, sys.stdout)
sys.stdout.flush()
os._exit(0)  # the output is written: skip the interpreter's teardown of numpy (~0.1 s)
