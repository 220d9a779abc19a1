"""Unit constants shared by every module (the model runs in minutes, µm and ng/mL)."""
import math

MIN_PER_DAY = 1440.0
LN2 = math.log(2.0)
