"""Tumor endpoints (sim.metrics): a tumor that halves and regrows has a time to response and a time to
progression but is not durably controlled; 'control' never means 'first dipped below half'."""
import numpy as np
import pandas as pd

from sim.metrics import (durable_control, durable_hold_h, outcome_metrics, time_to_progression,
                         time_to_response)

T = np.arange(0, 14 * 24 + 1, 24.0)  # 15 daily outputs over 14 days


def test_regrowing_tumor_responds_progresses_and_is_not_durably_controlled():
    y = np.array([100, 80, 60, 45, 40, 38, 40, 46, 55, 70, 85, 100, 120, 140, 160], dtype=float)
    assert time_to_response(T, y) == 3 * 24.0  # 45 ≤ 50
    assert time_to_progression(T, y) == 7 * 24.0  # 46 ≥ 1.2 × 38
    assert not durable_control(T, y)
    assert durable_hold_h(T[-1]) == 7 * 24.0


def test_durable_control_needs_the_whole_final_window():
    y = np.array([100, 70, 50, 40, 30, 20, 15, 12, 10, 9, 8, 8, 9, 9, 8], dtype=float)
    assert durable_control(T, y) and time_to_progression(T, y) is None
    y2 = y.copy()
    y2[-8] = 60  # above half on day 7, inside the last 7 days
    assert not durable_control(T, y2)
    assert durable_control(T, y2, hold_h=5 * 24)  # a shorter stated window excludes day 7


def test_growing_tumor_never_responds_and_progresses_at_plus_20_percent():
    y = 100 * 1.05 ** np.arange(T.size)
    assert time_to_response(T, y) is None
    assert time_to_progression(T, y) == 4 * 24.0  # 1.05^4 = 1.216
    assert not durable_control(T, y)


def test_eradicated_tumor_does_not_progress_and_short_runs_use_half_the_run():
    y = np.array([100, 40, 5, 0, 0], dtype=float)
    t = np.arange(5) * 12.0  # 48 h run: the window is the last 24 h
    assert time_to_progression(t, y) is None and durable_control(t, y) and durable_hold_h(48.0) == 24.0


def test_outcome_metrics_report_the_endpoints():
    ts = pd.DataFrame({"time_h": T, "tumor": [100, 80, 60, 45, 40, 38, 40, 46, 55, 70, 85, 100, 120, 140, 160],
                       "nk_live": 10, "kills_car": 0, "kills_innate": 0, "kills_adcc": 0})
    m = outcome_metrics(ts, np.array([0, 1]), None)
    assert m["response_time_h"] == 72.0 and m["progression_time_h"] == 168.0
    assert m["durable_control"] is False and m["durable_control_hold_h"] == 168.0
