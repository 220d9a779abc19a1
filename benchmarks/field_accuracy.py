"""Accuracy cost of a coarser field grid, on a real cell configuration (not part of `make bench`).

Runs a 3D lesion for a few hours at field_coarsen 1, freezes the cells, and solves the three fields
to near steady state with the same sources on grids coarsened 1–4×; reports the relative error of
the concentrations the CAR-NK and tumor cells see, against the fine (coarsen 1) grid. The solver is
exact in time for constant sources, so the field step itself adds no error here.

    python benchmarks/field_accuracy.py [n_tumor] [n_nk] [hours]
"""
from __future__ import annotations

import json
import sys

import numpy as np

from sim.fields import CytokineFields
from sim.kernels import step as K
from sim.kernels.params import FIELD_NAMES
from sim.model import TumorImmuneModel
from sim.scenario.kernel_units import secretion_rate


def main(argv: list[str]) -> int:
    n_tumor = int(float(argv[0])) if argv else 100_000
    n_nk = int(float(argv[1])) if len(argv) > 1 else 20_000
    hours = float(argv[2]) if len(argv) > 2 else 4.0
    edge = 96  # divisible by 1, 2, 3, 4
    cfg = {"domain": {"dims": 3, "size_um": [edge * 20.0] * 3, "field_coarsen": 1, "field_precision": "double"},
           "tumor": {"init": {"count": n_tumor}}, "nk": {"dose": {"cells": n_nk, "placement": "rim"}, "il15": {"mode": "secreted"}}}
    m = TumorImmuneModel(cfg, rng=3)
    for _ in range(int(hours * 30)):
        m.step()
    c = m.config
    t, nk = m.tumor, m.nk
    tum = t.site[: t.used][(t.state[: t.used] == K.T_ALIVE) | (t.state[: t.used] == K.T_DOOMED)]
    live = nk.state[: nk.used] != K.NK_EMPTY
    nks = nk.site[: nk.used][live]
    engaged = nk.site[: nk.used][nk.state[: nk.used] == K.NK_KILLING]
    sources = {"tgfb": (tum, c.tumor.tgfb_secretion), "ifng": (engaged, c.nk.secretion.ifng_engaged), "il15": (nks, c.nk.il15.secretion)}
    specs = [c.fields.ifng, c.fields.tgfb, c.fields.il15]
    seen = {}
    for co in (1, 2, 3, 4):
        f = CytokineFields(m.shape, c.domain.spacing_um, co, FIELD_NAMES, [s.diffusion_um2_min for s in specs],
                           [s.half_life_min for s in specs], [s.background_ng_ml for s in specs],
                           large_grid_transform=np.float64)  # the coarsening error alone, not the precision
        for _ in range(12):  # 12 h with constant sources: every field within 0.02 % of steady state
            for name, (sites, q) in sources.items():
                f.secrete(name, sites, np.ones(len(sites)), secretion_rate(q, f.voxel_volume_ml))
            f.step(60.0)
        seen[co] = {name: {"nk": f.sample_sites(name, nks), "tumor": f.sample_sites(name, tum)} for name in FIELD_NAMES}
    out = {"n_tumor": int(len(tum)), "n_nk": int(len(nks)), "engaged": int(len(engaged)), "rows": []}
    for co in (2, 3, 4):
        for name in FIELD_NAMES:
            for who in ("nk", "tumor"):
                ref, val = seen[1][name][who], seen[co][name][who]
                scale = max(float(ref.mean()), 1e-30)
                out["rows"].append({"coarsen": co, "field": name, "cells": who, "mean_fine": float(ref.mean()),
                                    "rel_err_of_mean": float(abs(val.mean() - ref.mean()) / scale),
                                    "median_rel_err": float(np.median(np.abs(val - ref) / np.maximum(ref, 1e-30))),
                                    "p95_rel_err": float(np.quantile(np.abs(val - ref) / np.maximum(ref, 1e-30), 0.95))})
    print(f"{'coarsen':>7s} {'field':>5s} {'cells':>6s} {'mean (fine)':>12s} {'err of mean':>12s} {'median err':>11s} {'p95 err':>8s}")
    for r in out["rows"]:
        print(f"{r['coarsen']:7d} {r['field']:>5s} {r['cells']:>6s} {r['mean_fine']:12.4g} {r['rel_err_of_mean']:12.1%} "
              f"{r['median_rel_err']:11.1%} {r['p95_rel_err']:8.1%}")
    print("BENCH_JSON " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
