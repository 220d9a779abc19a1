"""Benchmark cases, each run in its own process (`python -m benchmarks.cases NAME JSON`) so that peak
RSS, thread settings and the Numba cache state belong to that case alone. Prints one JSON line."""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import tracemalloc

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def model_run(cfg: dict, seed: int, steps: int, checkpoints: list[int], fft_workers: int = 1, overrides: dict | None = None) -> dict:
    """Build a TumorImmuneModel and step it, timing wall and CPU at each checkpoint (in steps)."""
    from scipy import fft

    from sim.kernels import step as K
    from sim.model import TumorImmuneModel

    w0, c0 = clocks()
    m = TumorImmuneModel(cfg, rng=seed, **(overrides or {}))
    w1, c1 = clocks()
    mem = {
        "tumor_bytes": int(m.tumor.nbytes() + m.occ.nbytes + m.occ_bits.nbytes + m.alive_bits.nbytes + m.vox_tumor.nbytes + m.vox_stroma.nbytes),
        "tumor_cells": m.tumor_count(),
        "nk_array_bytes": int(m.nk.nbytes()),
        "nk_cells": m.nk_live(),
        "field_bytes": int(m.fields.values.nbytes + m.fields.sources.nbytes),
    }
    out = {"init_wall_s": w1 - w0, "init_cpu_s": c1 - c0, "shape": list(m.shape), "field_shape": list(m.fshape),
           "memory_t0": mem, "checkpoints": []}
    agent_steps = 0
    tumor_every = m._tumor_every
    with fft.set_workers(fft_workers):
        ws, cs = clocks()
        for k in range(1, steps + 1):
            agent_steps += m.nk_live() + (m.tumor_count() if k % tumor_every == 0 else 0)
            m.step()
            if k in checkpoints:
                w, c = clocks()
                out["checkpoints"].append({"steps": k, "sim_min": m.now_min, "wall_s": w - ws, "cpu_s": c - cs,
                                           "agent_steps": agent_steps, "tumor": m.tumor_count(), "nk": m.nk_live()})
    out["tumor_end"] = m.tumor_count()
    out["nk_end"] = m.nk_live()
    c = m.nk_counts
    out["kills"] = c.kills_car + c.kills_innate + c.kills_adcc
    out["peak_rss_mb"] = peak_rss_mb()
    out["memory_end"] = {"tumor_bytes": int(m.tumor.nbytes() + m.occ.nbytes + m.occ_bits.nbytes + m.alive_bits.nbytes + m.vox_tumor.nbytes + m.vox_stroma.nbytes),
                         "tumor_cells": m.tumor_count()}
    return out


def nk_step_ns(m, steps: int) -> tuple[float, float]:
    """CPU ns per live cell-step of the CAR-NK phase alone (`model.step_nk`) over `steps` model steps,
    and the mean live cells per step. The CPU time is the calling thread's: the field prefetch thread
    runs beside the (nogil) kernel, and process time would count its transforms as NK work."""
    orig = m.step_nk
    acc = [0.0, 0]

    def timed():
        c = time.thread_time()
        orig()
        acc[0] += time.thread_time() - c
        acc[1] += m._nk_moves[2]

    m.step_nk = timed
    for _ in range(steps):
        m.step()
    m.step_nk = orig
    return acc[0] / max(acc[1], 1) * 1e9, acc[1] / steps


def case_nk_step(a: dict) -> dict:
    """Issue 15: the CAR-NK step alone on a 3D lesion (n_nk cells around n_tumor), `repeats` windows of
    `steps` steps after a warm-up of `warm` steps."""
    from benchmarks.scenarios_lib import lesion
    from sim.model import TumorImmuneModel

    m = TumorImmuneModel(lesion(a["n_tumor"], a["n_nk"]), rng=1)
    for _ in range(a.get("warm", 20)):
        m.step()
    wins = [nk_step_ns(m, a.get("steps", 20)) for _ in range(a.get("repeats", 3))]
    return {"ns": [w[0] for w in wins], "cells": [w[1] for w in wins], "peak_rss_mb": peak_rss_mb()}


def case_lesion(a: dict) -> dict:
    """A 3D lesion for `days` (checkpoints every 6 h)."""
    from benchmarks.scenarios_lib import lesion

    cfg = lesion(a["n_tumor"], a.get("n_nk", 100_000), a.get("coarsen", 3), a.get("field_dt_min", 10.0))
    dt = 2.0
    steps = int(round(a.get("days", 1.0) * 1440 / dt))
    cps = sorted({int(round(h * 60 / dt)) for h in (6, 12, 18, 24) if h * 60 / dt <= steps} | {steps})
    return model_run(cfg, 1, steps, cps, a.get("fft_workers", 1))


def case_nksim_baseline(a: dict) -> dict:
    """nksim on the Mesa-baseline tissue (fields off, same rules as the reference)."""
    from benchmarks.mesa_reference import oracle_overrides
    from benchmarks.scenarios_lib import mesa_baseline

    cfg = mesa_baseline(a["n_agents"])
    w = a["window_steps"]
    cps = [w * (i + 1) for i in range(a["windows"])]
    warm = a.get("warm_steps", 5)
    r = model_run(cfg, 1, warm + cps[-1], [warm] + [warm + c for c in cps], 1, oracle_overrides())
    return r


def case_mesa_baseline(a: dict) -> dict:
    """The plain-Mesa reference on the same tissue: agent-steps per second over a few windows."""
    from benchmarks.mesa_reference import MesaReference, oracle_overrides
    from benchmarks.scenarios_lib import mesa_baseline
    from sim.model import TumorImmuneModel

    m = TumorImmuneModel(mesa_baseline(a["n_agents"]), rng=1, **oracle_overrides())
    w0, c0 = clocks()
    ref = MesaReference(m, seed=1)
    w1, c1 = clocks()
    del m
    out = {"init_wall_s": w1 - w0, "init_cpu_s": c1 - c0, "windows": []}
    for _ in range(a.get("warm_steps", 0)):  # the same warm-up as nksim_baseline: both time one period
        ref.step()
    for _ in range(a["windows"]):
        agent_steps = 0
        ws, cs = clocks()
        for _ in range(a["window_steps"]):
            k = ref.steps + 1
            agent_steps += ref.nk_live() + (ref.tumor_count() if k % ref.tumor_every == 0 else 0)
            ref.step()
        w, c = clocks()
        out["windows"].append({"wall_s": w - ws, "cpu_s": c - cs, "agent_steps": agent_steps})
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def case_nk_memory(a: dict) -> dict:
    """Bytes per CAR-NK cell: whole-model traced memory with n CAR-NK minus with none, divided by n.

    Counts the NK arrays at their default capacity (2× the dose), the registered Mesa agent objects
    and Mesa's agent registries (tracemalloc sees NumPy buffers too).
    """
    import gc

    from sim.model import TumorImmuneModel

    n = a["n"]
    cfg = {"domain": {"dims": 3, "size_um": [2000.0] * 3}, "tumor": {"init": {"count": 1000}}, "nk": {"dose": {"cells": 0}}}
    TumorImmuneModel(cfg, rng=1)  # imports and caches outside the measurement
    gc.collect()
    tracemalloc.start()
    traced = []
    for dose in (0, n):
        base = tracemalloc.get_traced_memory()[0]
        m = TumorImmuneModel({**cfg, "nk": {"dose": {"cells": dose}}}, rng=1)
        traced.append(tracemalloc.get_traced_memory()[0] - base)
        if dose:
            arrays = m.nk.nbytes()
            agent = m._nk_agents[0]
            agent_obj = sys.getsizeof(agent) + sys.getsizeof(agent.__dict__)
        del m
        gc.collect()
    tracemalloc.stop()
    return {"n": n, "bytes_per_nk": (traced[1] - traced[0]) / n, "nk_array_bytes_per_cell": arrays / n,
            "agent_object_bytes": agent_obj}


def case_startup(a: dict) -> dict:
    """`nksim run` on the quickstart scenario for one step; time from process launch to the first step."""
    t_launch = float(os.environ["NKSIM_BENCH_T0"])
    import sim.model as sm

    first: list[float] = []
    orig = sm.TumorImmuneModel.step

    def step(self):
        orig(self)
        if not first:
            first.append(time.time())

    sm.TumorImmuneModel.step = step
    from sim.cli import main

    rc = main(["run", a["scenario"], "--days", "0.0014", "--quiet", "--out", a["out"]])
    return {"rc": rc, "first_step_s": first[0] - t_launch, "total_s": time.time() - t_launch}


def case_sweep_run(a: dict) -> dict:
    """One sweep member (used by the sweep-throughput benchmark through a process pool)."""
    from sim.api import run

    r = run(a["scenario"], seed=a["seed"], days=a["days"])
    return {"tumor_end": int(r.timeseries["tumor"].iloc[-1])}


CASES = {k[5:]: v for k, v in dict(globals()).items() if k.startswith("case_")}

if __name__ == "__main__":
    name, args = sys.argv[1], json.loads(sys.argv[2])
    res = CASES[name](args)
    res["loadavg_end"] = list(os.getloadavg())
    print("BENCH_JSON " + json.dumps(res, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
