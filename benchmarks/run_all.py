"""`make bench`: nksim's performance suite. Prints a table with PASS/FAIL per target and writes
benchmarks/results.json. Each case runs in a fresh process (benchmarks/cases.py). Wall time is what
the targets are judged on; CPU time is recorded too, because on a shared machine the wall clock
also counts time spent waiting for a core (the load average is recorded with every case).

    python benchmarks/run_all.py [--quick] [--out benchmarks/results.json]

--quick runs a reduced suite (smaller lesions, fewer repeats) for smoke testing; its verdicts are
not the targets'.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


#: Peak RSS is recorded in MiB (ru_maxrss is KiB on Linux); the targets are decimal GB, as the issue writes them.
MIB = 2 ** 20


def _gb(mib: float) -> str:
    return f"{mib * MIB / 1e9:.2f} GB ({mib:.0f} MiB)"


def case(name: str, args: dict, env: dict | None = None, timeout: float = 600) -> dict:
    """Run one case in a fresh interpreter and return its JSON result."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    e["NKSIM_BENCH_T0"] = repr(time.time())
    p = subprocess.run([PY, "-m", "benchmarks.cases", name, json.dumps(args)], cwd=ROOT, env=e,
                       capture_output=True, text=True, timeout=timeout)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"case {name} failed (rc {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sweep_init() -> None:
    """Worker initializer: imports and the Numba cache load, as a sweep worker pays once."""
    sys.path.insert(0, str(ROOT))
    from sim.api import warm_up

    warm_up()


def sweep_member(seed: int) -> tuple[float, float]:
    """One sweep run (the HER2 solid-tumor scenario as written); returns its (start, end) wall times."""
    from sim.api import run

    t0 = time.time()
    run(str(ROOT / SWEEP_SCENARIO), seed=seed)
    return t0, time.time()


SWEEP_SCENARIO = "scenarios/her2_solid_tgfb.yaml"


def sweep_throughput(workers: int, n_runs: int) -> dict:
    """Runs per minute through a process pool of spawned workers: end to end (worker start-up included)
    and steady state (from the first run's start to the last run's end: what a long sweep sees)."""
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=sweep_init) as ex:
        spans = list(ex.map(sweep_member, range(n_runs)))
    t1 = time.time()
    steady = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"runs_per_min_end_to_end": n_runs / (t1 - t0) * 60.0, "runs_per_min_steady": n_runs / steady * 60.0}


COHORT_FILE = "scenarios/cohort_cd19_cb_il15.yaml"
COHORT_ARMS = ("dose_1e6", "dose_1e7")


def cohort_throughput(n_patients: int, workers: int) -> dict:
    """The shipped CD19 cohort cut to `n_patients` and two dose arms, run end to end by `nksim cohort`
    (Dask start-up, figures and tables included)."""
    import yaml

    from sim.cohort.run import run_cohort

    raw = yaml.safe_load((ROOT / COHORT_FILE).read_text(encoding="utf-8"))
    raw["base"] = str(ROOT / "scenarios" / raw["base"])
    raw["patients"] = n_patients
    raw["arms"] = [a for a in raw["arms"] if a["name"] in COHORT_ARMS]
    raw["criteria"]["follow_up_days"] = None  # the target is 28 days (the shipped file follows patients to day 90)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        t0 = time.perf_counter()
        run_cohort(path, out=Path(tmp) / "out", workers=workers, progress=False)
        wall = time.perf_counter() - t0
    runs = n_patients * len(COHORT_ARMS)
    return {"file": COHORT_FILE, "patients": n_patients, "arms": list(COHORT_ARMS), "workers": workers, "wall_s": wall,
            "runs": runs, "s_per_run": wall / runs}


def cohort_projection(small: dict, large: dict, runs: int = 200) -> dict:
    """The `runs`-run cohort time projected from two cohort sizes (the same first patients): the difference
    is the cost of the extra runs alone, the rest of the small one is the fixed cost (Dask start-up,
    figures, tables), so the fixed cost is not spread over the runs as a one-size projection spreads it."""
    per_run = (large["wall_s"] - small["wall_s"]) / (large["runs"] - small["runs"])
    fixed = max(0.0, small["wall_s"] - small["runs"] * per_run)
    return {"sizes": [small, large], "s_per_run": per_run, "fixed_s": fixed, "runs": large["runs"],
            "wall_s": large["wall_s"], "projected_100x2_min": (fixed + runs * per_run) / 60.0,
            "projected_one_size_min": large["s_per_run"] * runs / 60.0}


def compile_startup(scenario: str = "scenarios/quickstart.yaml", repeats: int = 3) -> dict:
    """Issue 15, on a private cold Numba cache: seconds from launching `nksim run` to its compile notice,
    the cold compile of `nksim compile` (every shipped scenario, what `make` runs at install), then the
    first step of `nksim run` with that cache (fresh processes, median of `repeats`)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = {"NUMBA_CACHE_DIR": f"{tmp}/numba_cache"}
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **cache}
        t0 = time.time()
        p = subprocess.Popen([PY, "-m", "sim", "run", scenario, "--quiet", "--out", f"{tmp}/cold"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        notice = None
        for line in p.stderr:
            if "compiling kernels" in line:
                notice = time.time() - t0
                break
        p.kill()  # mid-compile: Numba writes each cache entry atomically, and the compile below fills the rest
        p.communicate()
        t0 = time.perf_counter()
        c = subprocess.run([PY, "-m", "sim", "compile", "scenarios"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        cold = time.perf_counter() - t0
        if c.returncode != 0:
            raise RuntimeError(f"nksim compile failed (rc {c.returncode}):\n{c.stderr[-3000:]}")
        after = [case("startup", {"scenario": scenario, "out": f"{tmp}/after{k}"}, env=cache) for k in range(repeats)]
    return {"scenario": scenario, "notice_s": notice, "cold_compile_s": cold, "compile_log": c.stdout.splitlines(),
            "after_compile": after, "first_step_after_compile_s": statistics.median(a["first_step_s"] for a in after),
            "loadavg": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced smoke-test suite (verdicts not meaningful)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    a = ap.parse_args(argv)
    q = a.quick
    t_start = time.perf_counter()
    R: dict = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())},
               "quick": q, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    # ---- start-up: cold compile (empty Numba cache) and warm cache -----------------------------
    log("start-up (cold Numba cache)")
    with tempfile.TemporaryDirectory() as tmp:
        cold = case("startup", {"scenario": "scenarios/quickstart.yaml", "out": f"{tmp}/run"},
                    env={"NUMBA_CACHE_DIR": f"{tmp}/numba_cache"})
    case("startup", {"scenario": "scenarios/quickstart.yaml", "out": tempfile.mkdtemp()})  # make sure the cache is present
    warm = []
    for _ in range(2 if q else 3):
        log("start-up (warm cache)")
        warm.append(case("startup", {"scenario": "scenarios/quickstart.yaml", "out": tempfile.mkdtemp()}))
    R["startup"] = {"cold": cold, "warm": warm,
                    "cold_first_step_s": cold["first_step_s"],
                    "warm_first_step_s_median": statistics.median(w["first_step_s"] for w in warm)}

    # ---- issue 15: the compile notice, the cold compile and the first step after `nksim compile` ----
    log("compile notice, nksim compile and first step on a private cold cache")
    R["compile"] = compile_startup(repeats=2 if q else 3)

    # ---- per agent-step: plain Mesa vs nksim on the same 1e5-agent tissue ----------------------
    # Measured as five back-to-back pairs (Mesa, then nksim, each in a fresh process, same simulated
    # period: a 5-step warm-up, then 10-step windows), so a change in machine speed during the suite
    # hits both sides of a pair; the ratio is the median of the per-pair ratios.
    n_agents = 20_000 if q else 100_000
    pairs = []
    for rep in range(2 if q else 5):
        log(f"pair {rep + 1}: plain Mesa reference, {n_agents} agents")
        mesa = case("mesa_baseline", {"n_agents": n_agents, "windows": 3, "window_steps": 10, "warm_steps": 5})
        log(f"pair {rep + 1}: nksim, same tissue and rules")
        nks = case("nksim_baseline", {"n_agents": n_agents, "windows": 3, "window_steps": 10, "warm_steps": 5})
        cps = nks["checkpoints"]
        nk_win = [{"wall_s": c["wall_s"] - p["wall_s"], "cpu_s": c["cpu_s"] - p["cpu_s"],
                   "agent_steps": c["agent_steps"] - p["agent_steps"]} for p, c in zip(cps[:-1], cps[1:])]
        per = {}
        for side, wins in (("mesa", mesa["windows"]), ("nksim", nk_win)):
            per[side + "_ns"] = statistics.median(w["wall_s"] / w["agent_steps"] * 1e9 for w in wins)
            per[side + "_cpu_ns"] = statistics.median(w["cpu_s"] / w["agent_steps"] * 1e9 for w in wins)
        pairs.append({"mesa": mesa, "nksim": nks, **per, "ratio": per["mesa_ns"] / per["nksim_ns"],
                      "ratio_cpu": per["mesa_cpu_ns"] / per["nksim_cpu_ns"]})
    R["per_agent_step"] = {
        "n_agents": n_agents, "pairs": pairs,
        "mesa_ns_median": statistics.median(x["mesa_ns"] for x in pairs),
        "nksim_ns_median": statistics.median(x["nksim_ns"] for x in pairs),
        "ratio": statistics.median(x["ratio"] for x in pairs),
        "ratio_cpu": statistics.median(x["ratio_cpu"] for x in pairs),
        "ratio_min": min(x["ratio"] for x in pairs),
    }

    # ---- memory per CAR-NK cell -----------------------------------------------------------------
    log("CAR-NK memory")
    nkm = case("nk_memory", {"n": 20_000 if q else 100_000})
    R["nk_memory"] = nkm

    # ---- thread scaling (scipy.fft workers; the kernels are serial by design) ------------------
    n_thr = 10_000 if q else 1_000_000
    thr = {1: [], 2: []}
    for rep in range(1 if q else 2):
        for w in (1, 2):
            log(f"thread scaling: lesion {n_thr:.0e}, 2 h, {w} thread(s)")
            thr[w].append(case("lesion", {"n_tumor": n_thr, "n_nk": 10_000 if q else 100_000, "days": 2 / 24, "fft_workers": w}))
    t1 = statistics.median(r["checkpoints"][-1]["wall_s"] for r in thr[1])
    t2 = statistics.median(r["checkpoints"][-1]["wall_s"] for r in thr[2])
    R["threads"] = {"n_tumor": n_thr, "sim_hours": 2, "wall_s_1": t1, "wall_s_2": t2, "speedup": t1 / t2,
                    "runs": {str(k): v for k, v in thr.items()}}

    # ---- lesions: scaling series and the two 1-day targets --------------------------------------
    sizes = [10_000, 100_000] if q else [10_000, 100_000, 1_000_000, 10_000_000]
    n_nk = 10_000 if q else 100_000
    big = sizes[-2:]
    lesions = {}
    for n in sizes:
        days = 1.0 if n in big else 0.25
        log(f"lesion {n:.0e} tumor + {n_nk:.0e} CAR-NK, {days} day")
        lesions[str(n)] = case("lesion", {"n_tumor": n, "n_nk": n_nk, "days": days}, timeout=1200)
    R["lesions"] = lesions
    series = []
    for n in sizes:
        r = lesions[str(n)]
        c6 = next(c for c in r["checkpoints"] if abs(c["sim_min"] - 360) < 1e-6)
        full = r["checkpoints"][-1]
        series.append({"n_tumor": n, "n_nk": n_nk, "first_6h_wall_s_per_day": c6["wall_s"] * 4, "first_6h_cpu_s_per_day": c6["cpu_s"] * 4,
                       "wall_s_per_day": full["wall_s"] / full["sim_min"] * 1440, "cpu_s_per_day": full["cpu_s"] / full["sim_min"] * 1440,
                       "sim_days_per_wall_min": 60.0 / (full["wall_s"] / full["sim_min"] * 1440),
                       "ns_per_agent_step": full["wall_s"] / full["agent_steps"] * 1e9,
                       "peak_rss_mb": r["peak_rss_mb"], "init_wall_s": r["init_wall_s"],
                       "bytes_per_tumor_cell_t0": r["memory_t0"]["tumor_bytes"] / r["memory_t0"]["tumor_cells"],
                       "bytes_per_tumor_cell_end": r["memory_end"]["tumor_bytes"] / max(1, r["memory_end"]["tumor_cells"]),
                       "field_shape": r["field_shape"], "shape": r["shape"]})
    R["scaling"] = series

    # ---- issue 15: the CAR-NK step alone, CAR-NK scaling, and the 1e8 lesion ----------------------------
    nt, nn = (100_000, 10_000) if q else (1_000_000, 100_000)
    log(f"CAR-NK step alone: 3D lesion {nt:.0e} + {nn:.0e} CAR-NK, 3 × 20 steps")
    R["nk_step"] = case("nk_step", {"n_tumor": nt, "n_nk": nn, "repeats": 3}, timeout=1200)
    R["nk_step"]["ns_median"] = statistics.median(R["nk_step"]["ns"])
    # CAR-NK scaling at a fixed lesion: nn/10, nn (the lesion series' run) and 10·nn CAR-NK, first 6 h each
    six_h = {}
    for k in (nn // 10, nn * 10):
        log(f"CAR-NK scaling: lesion {nt:.0e} with {k:.0e} CAR-NK, 6 h")
        six_h[k] = case("lesion", {"n_tumor": nt, "n_nk": k, "days": 0.25}, timeout=1800)["checkpoints"][-1]["wall_s"]
    c6 = next(c for c in lesions[str(nt)]["checkpoints"] if abs(c["sim_min"] - 360) < 1e-6) if str(nt) in lesions else None
    six_h[nn] = c6["wall_s"] if c6 else None
    counts = sorted(six_h)
    walls = [six_h[k] for k in counts]
    ratios = [b / a if a and b else None for a, b in zip(walls, walls[1:])]
    R["nk_scaling"] = {"n_tumor": nt, "n_nk": counts, "wall_s_6h": walls, "ratios": ratios,
                       "ratio": max(ratios) if all(ratios) else None}  # the target: no 10× step worse than linear
    n_huge, nk_huge = (1_000_000, 100_000) if q else (100_000_000, 1_000_000)
    log(f"lesion {n_huge:.0e} tumor + {nk_huge:.0e} CAR-NK, 2 simulated hours (projected to a day)")
    try:
        huge = case("lesion", {"n_tumor": n_huge, "n_nk": nk_huge, "days": 2 / 24}, timeout=1800)
        hc = huge["checkpoints"][-1]
        R["lesion_huge"] = {"n_tumor": n_huge, "n_nk": nk_huge, "init_wall_s": huge["init_wall_s"], "sim_min": hc["sim_min"],
                            "wall_s": hc["wall_s"], "wall_s_per_day": hc["wall_s"] / hc["sim_min"] * 1440,
                            "peak_rss_mb": huge["peak_rss_mb"]}
    except (RuntimeError, subprocess.TimeoutExpired) as e:  # out of memory or time: a FAIL with the reason
        R["lesion_huge"] = {"n_tumor": n_huge, "n_nk": nk_huge, "error": str(e)[-500:], "wall_s_per_day": float("inf"),
                            "peak_rss_mb": float("inf")}

    # ---- sweep throughput -------------------------------------------------------------------------
    # nksim sweep (sim.sweep: Dask local cluster) end to end, and, as a diagnostic of the process model
    # alone, a bare ProcessPoolExecutor over sim.api.run (steady state, warmed workers)
    from sim.sweep.runner import run_sweep

    spec = "benchmarks/scenarios/sweep_bench.yaml"
    sw, steady = {}, {}
    for w in (1, 2):
        log(f"nksim sweep {spec}, {w} worker(s)")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_sweep(str(ROOT / spec), out=f"{tmp}/sweep", workers=w, progress=False)
            sw[w] = time.perf_counter() - t0
            man = json.loads(Path(f"{tmp}/sweep/manifest.json").read_text())
            ends = sorted(r["finished_at"] for r in man["runs"])
            # steady state: runs per minute once every worker has finished its first (warm-up) run
            steady[w] = (len(ends) - w) / (ends[-1] - ends[w - 1]) * 60.0
    n_runs = 4 if q else 16
    log(f"process pool: {n_runs} runs of {SWEEP_SCENARIO}, 1 worker")
    s1 = sweep_throughput(1, n_runs)
    log("process pool: 2 workers")
    s2 = sweep_throughput(2, n_runs)
    R["sweep"] = {"nksim_sweep": {"spec": spec, "wall_s_1": sw[1], "wall_s_2": sw[2], "speedup_end_to_end": sw[1] / sw[2],
                                  "runs_per_min_steady_1": steady[1], "runs_per_min_steady_2": steady[2],
                                  "speedup": steady[2] / steady[1]},
                  "process_pool": {"runs": n_runs, "scenario": SWEEP_SCENARIO, "one_worker": s1, "two_workers": s2,
                                   "speedup_steady": s2["runs_per_min_steady"] / s1["runs_per_min_steady"],
                                   "speedup_end_to_end": s2["runs_per_min_end_to_end"] / s1["runs_per_min_end_to_end"]}}
    R["sweep"]["speedup"] = R["sweep"]["nksim_sweep"]["speedup"]

    # ---- cohort throughput (issue 12's scale target) ---------------------------------------------------
    sizes = (1, 2) if q else (2, 6)
    done = []
    for n_pat in sizes:
        log(f"nksim cohort {COHORT_FILE}: {n_pat} patients × 2 arms × 28 days, 2 workers")
        done.append(cohort_throughput(n_pat, workers=2))
    R["cohort"] = cohort_projection(*done)

    # ---- verdicts -----------------------------------------------------------------------------------
    by_n = {s["n_tumor"]: s for s in series}
    b, s = big
    hg = R["lesion_huge"]
    nks = R["nk_scaling"]
    targets = [
        # issue 15 (second round); the first round's goals are in brackets where they were lower
        (f"CAR-NK step alone, 3D, {nn:.0e} CAR-NK at a {nt:.0e} lesion", "≤ 50 ns", R["nk_step"]["ns_median"], lambda v: v <= 50,
         f"{R['nk_step']['ns_median']:.0f} ns per cell-step (CPU, median of {len(R['nk_step']['ns'])} windows: "
         + ", ".join(f"{x:.0f}" for x in R["nk_step"]["ns"]) + ")"),
        ("per agent-step vs plain Mesa (1e5 agents)", "≥ 300×", R["per_agent_step"]["ratio"], lambda v: v >= 300,
         f"{R['per_agent_step']['ratio']:.0f}× median of {len(R['per_agent_step']['pairs'])} pairs, lowest {R['per_agent_step']['ratio_min']:.0f}× "
         f"(Mesa {R['per_agent_step']['mesa_ns_median']:.0f} ns, nksim {R['per_agent_step']['nksim_ns_median']:.1f} ns; CPU-time ratio "
         f"{R['per_agent_step']['ratio_cpu']:.0f}×; round 1: ≥ 100×)"),
        (f"lesion {hg['n_tumor']:.0e} + {hg['n_nk']:.0e} NK, 3 fields: wall per day", "≤ 300 s", hg["wall_s_per_day"], lambda v: v <= 300,
         f"{hg['wall_s_per_day']:.0f} s projected from {hg.get('sim_min', 0):.0f} simulated min (set-up {hg.get('init_wall_s', float('nan')):.0f} s)"
         if "error" not in hg else f"not measured: {hg['error'][-200:]}"),
        (f"lesion {hg['n_tumor']:.0e} + {hg['n_nk']:.0e} NK: peak RSS", "≤ 12 GB", hg["peak_rss_mb"], lambda v: v * MIB <= 12e9,
         _gb(hg["peak_rss_mb"]) if "error" not in hg else "not measured"),
        (f"lesion {s:.0e} + 1e5 NK, 3 fields: wall per day", "≤ 25 s", by_n[s]["wall_s_per_day"], lambda v: v <= 25,
         f"{by_n[s]['wall_s_per_day']:.1f} s (CPU {by_n[s]['cpu_s_per_day']:.1f} s; round 1: ≤ 120 s)"),
        (f"lesion {b:.0e} + 1e5 NK, 3 fields: wall per day", "≤ 30 s", by_n[b]["wall_s_per_day"], lambda v: v <= 30,
         f"{by_n[b]['wall_s_per_day']:.1f} s (CPU {by_n[b]['cpu_s_per_day']:.1f} s; round 1)"),
        ("10× tumor cells, NK fixed: time per day ratio", "≤ 2×", by_n[s]["wall_s_per_day"] / by_n[b]["wall_s_per_day"], lambda v: v <= 2,
         f"{by_n[s]['wall_s_per_day'] / by_n[b]['wall_s_per_day']:.2f}× (CPU {by_n[s]['cpu_s_per_day'] / by_n[b]['cpu_s_per_day']:.2f}×; round 1: ≤ 3×)"),
        (f"10× CAR-NK cells, tumor fixed ({nks['n_tumor']:.0e}): time ratio", "≤ 10×", nks["ratio"] if nks["ratio"] else float("inf"),
         lambda v: v <= 10,
         "worst of " + ", ".join(f"{r:.2f}×" for r in nks["ratios"]) + " (" + " → ".join(f"{k:.0e}" for k in nks["n_nk"])
         + " CAR-NK, first 6 h: " + " → ".join(f"{w:.1f}" for w in nks["wall_s_6h"]) + " s)"
         if nks["ratio"] else "not measured"),
        ("bytes per tumor cell (lattice incl.)", "≤ 100 B", by_n[s]["bytes_per_tumor_cell_t0"], lambda v: v <= 100,
         f"{by_n[s]['bytes_per_tumor_cell_t0']:.0f} B at {s:.0e} cells"),
        ("bytes per CAR-NK cell (Mesa agent incl.)", "≤ 500 B", nkm["bytes_per_nk"], lambda v: v <= 500,
         f"{nkm['bytes_per_nk']:.0f} B"),
        (f"lesion {s:.0e}: peak RSS", "≤ 4 GB", by_n[s]["peak_rss_mb"], lambda v: v * MIB <= 4e9,
         _gb(by_n[s]["peak_rss_mb"])),
        ("nksim run: first step, warm cache", "≤ 3 s", R["startup"]["warm_first_step_s_median"], lambda v: v <= 3,
         f"{R['startup']['warm_first_step_s_median']:.2f} s (cold compile: {R['startup']['cold_first_step_s']:.1f} s)"),
        ("nksim run, cold cache: the compile notice", "≤ 1 s", R["compile"]["notice_s"] or float("inf"), lambda v: v <= 1,
         f"{R['compile']['notice_s']:.2f} s after launch" if R["compile"]["notice_s"] else "no notice printed"),
        ("first step after the install-time nksim compile", "≤ 5 s", R["compile"]["first_step_after_compile_s"], lambda v: v <= 5,
         f"{R['compile']['first_step_after_compile_s']:.2f} s (cold nksim compile of every shipped scenario "
         f"{R['compile']['cold_compile_s']:.0f} s, run by make at install)"),
        ("sweep throughput (nksim sweep), 2 workers vs 1", "≥ 1.7×", R["sweep"]["speedup"], lambda v: v >= 1.7,
         f"{R['sweep']['speedup']:.2f}× steady ({R['sweep']['nksim_sweep']['runs_per_min_steady_1']:.0f} → "
         f"{R['sweep']['nksim_sweep']['runs_per_min_steady_2']:.0f} runs/min); end to end "
         f"{R['sweep']['nksim_sweep']['speedup_end_to_end']:.2f}× ({R['sweep']['nksim_sweep']['wall_s_1']:.0f} s → "
         f"{R['sweep']['nksim_sweep']['wall_s_2']:.0f} s); bare process pool {R['sweep']['process_pool']['speedup_steady']:.2f}×"),
        ("cohort: 100 CD19 patients × 2 arms × 28 d, 2 workers", "≤ 10 min", R["cohort"]["projected_100x2_min"], lambda v: v <= 10,
         f"{R['cohort']['projected_100x2_min']:.1f} min projected from {R['cohort']['sizes'][0]['runs']} and {R['cohort']['runs']} runs "
         f"({R['cohort']['sizes'][0]['wall_s']:.0f} and {R['cohort']['wall_s']:.0f} s: {R['cohort']['s_per_run']:.1f} s a run per 2 workers "
         f"+ {R['cohort']['fixed_s']:.0f} s fixed; one-size projection {R['cohort']['projected_one_size_min']:.0f} min)"),
    ]
    R["targets"] = [{"target": t, "goal": g, "value": v, "pass": bool(ok(v)), "measured": txt} for t, g, v, ok, txt in targets]
    R["machine"]["loadavg_end"] = list(os.getloadavg())
    R["total_wall_s"] = time.perf_counter() - t_start

    Path(a.out).write_text(json.dumps(R, indent=1) + "\n", encoding="utf-8")
    print()
    print(f"{'target':52s} {'goal':>8s}  verdict  measured")
    print("-" * 120)
    for t in R["targets"]:
        print(f"{t['target']:52s} {t['goal']:>8s}  {'PASS' if t['pass'] else 'FAIL':7s}  {t['measured']}")
    print("-" * 120)
    print(f"{'tumor cells':>12s} {'wall s/day':>11s} {'CPU s/day':>10s} {'days/wall-min':>14s} {'ns/agent-step':>14s} {'peak RSS MB':>12s} {'B/tumor cell':>13s}")
    for x in series:
        print(f"{x['n_tumor']:12.0e} {x['wall_s_per_day']:11.1f} {x['cpu_s_per_day']:10.1f} {x['sim_days_per_wall_min']:14.2f} "
              f"{x['ns_per_agent_step']:14.0f} {x['peak_rss_mb']:12.0f} {x['bytes_per_tumor_cell_t0']:13.0f}")
    print(f"threads (scipy.fft workers, lesion {n_thr:.0e}, 2 h): 1 → {t1:.1f} s, 2 → {t2:.1f} s ({t1 / t2:.2f}×)")
    print(f"load average start {R['machine']['loadavg_start']} end {R['machine']['loadavg_end']} on {os.cpu_count()} CPUs; "
          f"suite took {R['total_wall_s'] / 60:.1f} min; results in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
