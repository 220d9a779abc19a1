"""pytest fixtures."""
import pytest


@pytest.fixture
def small_scenario() -> dict:
    """A 2D scenario that runs a day in about a second."""
    return {
        "domain": {"dims": 2, "size_um": [800.0, 800.0]},
        "time": {"days": 1.0, "output_every_h": 2.0, "snapshot_every_h": 12.0},
        "tumor": {"init": {"count": 400}},
        "nk": {"dose": {"cells": 150, "placement": "rim"}},
    }
