"""`nksim view` without a browser: the rasteriser draws what the arrays hold, the session rebuilds
through the one resolution path, the CLI refuses what it cannot draw."""
import numpy as np
import pytest

from sim.cli import main
from sim.model import TumorImmuneModel
from sim.scenario import ScenarioError
from sim.view import render
from sim.view.session import ViewSession


def _is_tumor(img):
    """Pixels in the antigen colour table's magenta range (not grey antigen-negative cells)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 120) & (b > 80)


def _is_nk_free(img):
    c = render.NK_COLOURS["free"]
    return np.all(img == c, axis=-1)


def test_2d_frame_shows_tumor_and_nk(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    img, info = render.rasterise(render.extract(m, "tgfb"))
    assert img.dtype == np.uint8 and img.shape[2] == 3 and not info["downsampled"]
    z = info["zoom"]
    assert img.shape[:2] == (m.shape[1] * z, m.shape[0] * z)
    # each antigen-positive cell is a zoom × zoom square: at least its inner (zoom-2)² pixels are magenta
    ag_pos = int(m.tumor_stats.antigen_pos)
    assert _is_tumor(img).sum() >= 0.7 * ag_pos * (z - 2) ** 2
    assert _is_nk_free(img).sum() > 0
    png = render.png(img)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_3d_slice_draws_one_plane_and_projection_all():
    m = TumorImmuneModel({"domain": {"dims": 3, "size_um": [400.0, 400.0, 400.0]}, "tumor": {"init": {"count": 600}},
                          "nk": {"dose": {"cells": 50, "placement": "rim"}}}, rng=2)
    layers = render.extract(m, "ifng")
    zc = m.shape[2] // 2
    _, sl = render.rasterise(layers, "slice", zc)
    _, mx = render.rasterise(layers, "max")
    assert sl["tumor_drawn"] == int((layers.tumor_xyz[:, 2] == zc).sum()) > 0
    assert mx["tumor_drawn"] == m.tumor_count() and mx["nk_drawn"] == m.nk_live()
    _, out_of_range = render.rasterise(layers, "slice", 10_000)  # clamped to the last plane
    assert out_of_range["z"] == m.shape[2] - 1


def test_large_lattice_is_downsampled_to_max_px(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    img, info = render.rasterise(render.extract(m, None), max_px=16)
    assert info["downsampled"] and max(img.shape[:2]) <= 16
    assert _is_tumor(img).sum() > 0  # the nodule still shows


def test_session_steps_and_rebuilds_with_overrides(small_scenario):
    s = ViewSession(small_scenario, seed=3)
    s.advance(5)
    assert s.time_h == pytest.approx(5 * s.model.dt / 60) and s.model.steps == 5 and len(s.history) == 2
    assert s.speed.steps_per_s > 0
    s.build(**{"nk.dose.cells": 40, "tumor.antigen.negative_fraction": 0.5})
    assert s.time_h == 0 and s.builds == 2 and s.model.nk_live() == 40
    assert s.value("tumor.antigen.negative_fraction") == 0.5
    assert s.model.tumor_stats.antigen_neg > 0.3 * s.model.tumor_count()
    with pytest.raises(ScenarioError):
        s.build(**{"nk.persistence.half_life_days": -1})
    assert s.builds == 2 and s.model.nk_live() == 40  # the refused value changed nothing
    s.build()
    assert s.builds == 3 and s.model.nk_live() == 40
    paths = [p.path for p in s.params]
    assert paths == ["nk.dose.cells", "nk.il15.mode", "nk.persistence.half_life_days", "tumor.tgfb_secretion",
                     "tumor.antigen.negative_fraction"]
    assert s.curves()[:4] == b"\x89PNG"


def test_cli_view_refuses_a_well_mixed_scenario(capsys):
    assert main(["view", "scenarios/kuznetsov_wellmixed.yaml", "--no-warm-up"]) == 2
    assert "lattice" in capsys.readouterr().err
