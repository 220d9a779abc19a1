"""ABC-SMC with pyabc: the nksim model as a pyabc model, seeded samplers (inline or Dask), the run
with its resumable history, and the outputs (posterior, predictive check, YAML snippet, figures).

Inference is exact under the data's noise model: each datum is value ± uncertainty (one standard
deviation, independent Gaussian), so pyabc's stochastic acceptor (`IndependentNormalKernel` +
`StochasticAcceptor` + `Temperature`, Schälte & Hasenauer 2020) anneals the temperature to 1 by the
last generation, where the accepted particles are a weighted sample of the posterior (every
generation at temperature 1 is one; `posterior_sample` pools them).

Reproducibility: candidate i of generation t is evaluated with numpy's global random state seeded
from ``SeedSequence([seed, STREAM, t + 1, i])`` (the calibration sample is t = -1), and a generation
keeps candidates in index order up to the n-th accepted one. The posterior is therefore the same
whatever the number of workers, inline or on Dask.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pyabc
import yaml
from pyabc.sampler import DaskDistributedSampler
from pyabc.sampler.base import Sampler

from sim import api
from sim.output import read_parquet, write_json_atomic
from sim.scenario import ScenarioError
from sim.sweep.seeds import child_seed

from .spec import CalibrationError, Plan, load_calibration, observe  # noqa: F401  (CalibrationError re-exported)

#: Entropy words that separate the candidate, run and predictive-check streams of one seed.
CANDIDATE_STREAM, RUN_STREAM, PREDICTIVE_STREAM = 0xABC5, 0x5EED, 0x99C
#: Summary statistics of a particle whose parameters the scenario refuses (density ~ 0, finite).
INVALID = 1e9
DB_NAME = "calibration.db"


# ---------------------------------------------------------------------------------------------
# the model


class NKSimModel:
    """Parameters in fit space (ln for log priors) → summary statistics {datum key: value}.

    One call runs every condition (`replicates` wells each, averaged) with seeds drawn from numpy's
    global random state, which the samplers seed per candidate. Picklable: workers rebuild nothing
    but the small plan pieces it holds."""

    def __init__(self, plan: Plan):
        self.document = plan.document
        self.layers = plan.condition_layers
        self.hours = plan.condition_hours
        self.observables = plan.spec.observables
        self.priors = plan.spec.parameters
        self.integer = plan.integer
        self.replicates = plan.spec.replicates
        self.rows = [(k, r.condition, r.observable, float(r.time)) for k, r in zip(plan.keys, plan.data.itertuples())]
        self.keys = list(plan.keys)
        self.__name__ = "nksim"

    def natural(self, pars: dict) -> dict[str, float]:
        """Fit-space parameters → natural units (integers rounded)."""
        out = {}
        for p, prior in self.priors.items():
            v = prior.to_natural(float(pars[p]))
            out[p] = int(round(v)) if self.integer.get(p) else v
        return out

    def __call__(self, pars: dict) -> dict[str, float]:
        seed = int(np.random.randint(0, 2**62))
        return self.simulate(self.natural(pars), seed)["stats"]

    def simulate(self, theta: dict[str, float], seed: int, curves: bool = False) -> dict:
        """Run every condition at natural-unit `theta`; stats per datum (and full curves if asked)."""
        out: dict[str, Any] = {"stats": {}, "curves": {}}
        per_cond: dict[str, list] = {}
        try:
            for ci, cond in enumerate(self.layers):
                layer = {**self.layers[cond], **theta}
                seeds = [child_seed(c) for c in np.random.SeedSequence([seed, RUN_STREAM, ci]).spawn(self.replicates)]
                per_cond[cond] = [api.run(self.document, seed=s, days=self.hours[cond] / 24.0, overrides=layer)
                                  for s in seeds]
        except ScenarioError:
            out["stats"] = {k: INVALID for k in self.keys}
            return out
        for key, cond, obs, t in self.rows:
            spec = self.observables[obs]
            out["stats"][key] = float(np.mean([observe(spec, r.timeseries, r.metrics, t)[0] for r in per_cond[cond]]))
        if curves:
            for cond, runs in per_cond.items():
                for obs in {o for _, c, o, _ in self.rows if c == cond}:
                    spec = self.observables[obs]
                    th = runs[0].timeseries["time_h"].to_numpy(dtype=float)
                    if spec.kind == "metric":
                        th = np.array([self.hours[cond]])
                    out["curves"][(cond, obs)] = (th, np.mean([observe(spec, r.timeseries, r.metrics, th) for r in runs], axis=0))
        return out


def _predict_one(model: NKSimModel, theta: dict, seed: int) -> dict:
    return model.simulate(theta, seed, curves=True)


# ---------------------------------------------------------------------------------------------
# seeded samplers


def _seed_globals(entropy: tuple[int, ...]) -> None:
    ss = np.random.SeedSequence(list(entropy))
    np.random.seed(ss.generate_state(4))
    random.seed(int(ss.generate_state(1, dtype=np.uint64)[0]))


def _evaluate(simulate_one, entropy: tuple[int, ...], ids: list[int]) -> list[tuple[int, Any]]:
    """Candidates `ids`, each with its own seeded global random state (worker side)."""
    if isinstance(simulate_one, bytes):
        simulate_one = cloudpickle.loads(simulate_one)
    out = []
    for i in ids:
        _seed_globals(entropy + (i,))
        out.append((i, simulate_one()))
    return out


class _SeededMixin:
    """Common bookkeeping: the entropy of generation t and the ordered cut at the n-th acceptance."""

    seed: int
    progress: bool = False
    _last_report: float = 0.0

    def _report(self, t: int, evaluated: int, accepted: int, n: int) -> None:
        """A progress line within a long generation, at most every 30 s."""
        now = time.perf_counter()
        if self.progress and now - self._last_report >= 30.0:
            self._last_report = now
            print(f"calibrate: generation {t}: {accepted}/{n} accepted of {evaluated} evaluated", file=sys.stderr, flush=True)

    def _entropy(self, t: int) -> tuple[int, ...]:
        return (int(self.seed), CANDIDATE_STREAM, int(t) + 1)

    def _cut(self, n: int, results: dict[int, Any]):
        """Sample of candidates 0..k in order, k the n-th accepted one."""
        sample = self._create_empty_sample()
        accepted = 0
        for i in sorted(results):
            sample.append(results[i])
            accepted += bool(results[i].accepted)
            if accepted == n:
                self.nr_evaluations_ = i + 1  # what an inline run evaluates, so acceptance rates are worker-independent
                break
        return sample


class InlineSampler(_SeededMixin, Sampler):
    """Candidates one after another in this process (tests, debugging)."""

    label = "inline"

    def __init__(self, seed: int):
        Sampler.__init__(self)
        self.seed = seed

    def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None):
        results, i, accepted = {}, 0, 0
        while accepted < n:
            ((_, p),) = _evaluate(simulate_one, self._entropy(t), [i])
            results[i] = p
            accepted += bool(p.accepted)
            i += 1
            self._report(t, i, accepted, n)
        return self._cut(n, results)


class SeededDaskSampler(_SeededMixin, DaskDistributedSampler):
    """pyabc's DaskDistributedSampler with per-candidate seeds: at most one batch per worker thread,
    candidates kept in index order up to the n-th accepted one, later batches cancelled."""

    def __init__(self, client, seed: int, batch_size: int = 1):
        DaskDistributedSampler.__init__(self, dask_client=client, batch_size=batch_size)
        self.seed = seed
        self.label = "dask"

    def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None):
        from distributed import as_completed

        payload = self.client.scatter(cloudpickle.dumps(simulate_one), broadcast=True)
        entropy, b = self._entropy(t), self.batch_size
        results: dict[int, Any] = {}
        running: dict = {}  # future -> first candidate id
        next_id, cut = 0, math.inf
        ac = as_completed()

        def submit() -> None:
            nonlocal next_id
            ids = list(range(next_id, next_id + b))
            fut = self.client.submit(_evaluate, payload, entropy, ids, pure=False)
            running[fut] = next_id
            ac.add(fut)
            next_id += b

        for _ in range(max(1, self.client_cores())):
            submit()
        for fut in ac:
            first = running.pop(fut, None)
            if first is None or fut.cancelled():
                continue
            for i, p in fut.result():
                results[i] = p
            acc = sorted(i for i, p in results.items() if p.accepted)
            self._report(t, len(results), len(acc), n)
            if len(acc) >= n:
                cut = acc[n - 1]
                for f, f0 in list(running.items()):
                    if f0 > cut:
                        f.cancel()
                        del running[f]
            elif next_id <= cut:
                while len(running) < max(1, self.client_cores()):
                    submit()
            if not running:
                break
        return self._cut(n, {i: p for i, p in results.items() if i <= cut})


class _Temperature(pyabc.Temperature):
    """pyabc's Temperature, resumable: the schedule counts the total number of generations (pyabc
    counts those of the current `run` call) and earlier temperatures are read back from the history."""

    def __init__(self, total: int, previous: dict[int, float]):
        super().__init__()
        self.total = total
        self.previous = previous

    def initialize(self, t, get_weighted_distances, get_all_records, max_nr_populations, acceptor_config):
        self.temperatures.update(self.previous)
        super().initialize(t, get_weighted_distances, get_all_records, self.total, acceptor_config)


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class CalibrationResult:
    """What `calibrate` wrote and found."""

    out: Path
    plan: Plan
    posterior: pd.DataFrame  # natural units + weight + generation: the generations at temperature 1, pooled
    summary: dict  # per parameter: median, q05, q95, prior, base value; run facts
    generations_run: int  # generations sampled by this call (0: the history was complete)


def _prior(plan: Plan) -> pyabc.Distribution:
    rvs = {}
    for p, pr in plan.spec.parameters.items():
        loc, scale = pr.fit_loc_scale()
        lo, hi = pr.fit_bounds()
        if pr.prior in ("uniform", "loguniform"):
            rvs[p] = pyabc.RV("uniform", loc, scale)
        elif math.isinf(lo) and math.isinf(hi):
            rvs[p] = pyabc.RV("norm", loc, scale)
        else:
            rvs[p] = pyabc.RV("truncnorm", (lo - loc) / scale, (hi - loc) / scale, loc, scale)
    return pyabc.Distribution(**rvs)


def observed(plan: Plan) -> dict[str, float]:
    return {k: float(v) for k, v in zip(plan.keys, plan.data["value"])}


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Quantile of a weighted sample (interpolated on the mid-point CDF)."""
    i = np.argsort(x)
    x, w = np.asarray(x, dtype=float)[i], np.asarray(w, dtype=float)[i]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, cdf, x))


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None, tasks: int):
    """None for inline, else a Dask client (a local process cluster, or a scheduler's)."""
    if scheduler == "inline":
        yield None
        return
    from sim.precompile import ensure_precompiled
    from sim.sweep.executors import _Dask
    from sim.sweep.store import SweepError

    if scheduler is None:
        ensure_precompiled()  # before the local workers start: each then loads the kernels instead of compiling them
    try:
        ex = _Dask(workers, scheduler, tasks, warm=True)
    except SweepError as e:
        raise CalibrationError(str(e)) from None
    try:
        if scheduler is None:
            from sim.sweep.worker import warm_up

            ex.client.run(warm_up)
        yield ex.client
    finally:
        ex.close()


class _Progress(logging.Handler):
    """pyabc's per-generation log lines, shortened, on stderr."""

    def __init__(self, t0: float):
        super().__init__(logging.INFO)
        self.t0 = t0

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith(("t: ", "Accepted:", "Calibration sample")):
            print(f"calibrate [{time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def calibrate(path: str | Path, out: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
              generations: int | None = None, progress: bool = True, figures: bool = True) -> CalibrationResult:
    """Run or continue the calibration of a file; write posterior, predictive check and figures to `out`.

    `scheduler`: None (a local Dask cluster of `workers` processes), "tcp://host:port" or "inline".
    `generations` overrides calibrate.generations (the total; a history with fewer is continued)."""
    plan = load_calibration(path)
    total = generations if generations is not None else plan.spec.generations
    if total < 1:
        raise CalibrationError("generations must be >= 1")
    out = Path(out) if out is not None else Path("results") / plan.name
    out.mkdir(parents=True, exist_ok=True)
    db = out / DB_NAME
    manifest_path = out / "manifest.json"
    fp = plan.fingerprint()
    if db.exists():
        import json

        old = json.loads(manifest_path.read_text()).get("fingerprint") if manifest_path.exists() else None
        if old != fp:
            raise CalibrationError(f"{db} holds the history of a different calibration (parameters, priors, data, conditions, "
                                   "observables, seed or base scenario changed); delete it or choose another --out")
    model = NKSimModel(plan)
    keys = plan.keys
    var = (plan.data["uncertainty"].to_numpy(dtype=float)) ** 2
    t_start = time.perf_counter()
    log = logging.getLogger("ABC")  # pyabc's own handler prints every log line: ours keeps the generation lines
    saved = (log.handlers[:], log.level, log.propagate)
    log.handlers = [_Progress(t_start)] if progress else []
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        with _client(workers, scheduler, plan.spec.population) as client:
            sampler = InlineSampler(plan.seed) if client is None else SeededDaskSampler(client, plan.seed)
            sampler.progress, sampler._last_report = progress, time.perf_counter()
            done = 0
            if db.exists():
                history = pyabc.History(f"sqlite:///{db}")
                done = history.max_t + 1 if history.max_t is not None and history.max_t >= 0 else 0
                if not done:  # interrupted before its first generation finished: start afresh
                    db.unlink()
            previous = {}
            if done:
                pops = history.get_all_populations()
                previous = {int(r.t): float(r.epsilon) for r in pops.itertuples() if r.t >= 0}
            abc = pyabc.ABCSMC(model, _prior(plan), pyabc.IndependentNormalKernel(var=var, keys=keys),
                               population_size=plan.spec.population, eps=_Temperature(total, previous),
                               acceptor=pyabc.StochasticAcceptor(), sampler=sampler)
            if done:
                abc.load(f"sqlite:///{db}", 1)
            else:
                abc.new(f"sqlite:///{db}", observed(plan))
                write_json_atomic(manifest_path, {"fingerprint": fp, "file": str(plan.spec_path), "seed": plan.seed,
                                                  "method": "pyabc ABC-SMC, stochastic acceptor (exact under Gaussian noise)"})
            remaining = total - done
            if remaining > 0:
                if progress:
                    print(f"calibrate: {plan.name}: generations {done}..{total - 1} of {total}, {plan.spec.population} particles, "
                          f"{len(keys)} data, {len(plan.condition_layers)} conditions, sampler {sampler.label}", file=sys.stderr)
                abc.run(minimum_epsilon=0.0, max_nr_populations=remaining)
            elif progress:
                print(f"calibrate: {db} already holds {done} generations (raise calibrate.generations or --generations to continue)",
                      file=sys.stderr)
            history = pyabc.History(f"sqlite:///{db}")
            result = _write_outputs(plan, model, history, out, client, figures, time.perf_counter() - t_start, remaining)
    finally:
        log.handlers, log.level, log.propagate = saved[0], saved[1], saved[2]
    return result


def _write_outputs(plan: Plan, model: NKSimModel, history, out: Path, client, figures: bool, wall: float,
                   remaining: int) -> CalibrationResult:
    from .figures import marginals_figure, pairs_figure, predictive_figure

    t_last = history.max_t
    pops_all = history.get_all_populations()
    pops = pops_all[pops_all["t"] >= 0]
    exact = [int(t) for t, e in zip(pops["t"], pops["epsilon"]) if float(e) == 1.0]
    post, ess_by_gen = posterior_sample(plan, history, exact or [t_last])
    post.to_parquet(out / "posterior.parquet", index=False)
    params = {}
    for p in plan.names:
        x, ww = post[p].to_numpy(), post["weight"].to_numpy()
        params[p] = {"median": weighted_quantile(x, ww, 0.5), "q05": weighted_quantile(x, ww, 0.05),
                     "q95": weighted_quantile(x, ww, 0.95), "prior": plan.spec.parameters[p].describe(),
                     "base_value": plan.base_values[p]}
    ess = float(1.0 / np.sum(post["weight"] ** 2))  # of the pooled sample
    # posterior predictive check: fresh simulations at posterior draws
    n = plan.spec.predictive_draws
    rng = np.random.default_rng(np.random.SeedSequence([plan.seed, PREDICTIVE_STREAM]))
    idx = rng.choice(len(post), size=n, p=post["weight"].to_numpy()) if n else np.array([], dtype=int)
    thetas = [{p: (int(round(post[p].iloc[i])) if plan.integer.get(p) else float(post[p].iloc[i])) for p in plan.names} for i in idx]
    seeds = [child_seed(c) for c in np.random.SeedSequence([plan.seed, PREDICTIVE_STREAM, 1]).spawn(n)]
    if client is not None and n:
        futs = client.map(_predict_one, [model] * n, thetas, seeds, pure=False)
        sims = client.gather(futs)
    else:
        sims = [_predict_one(model, th, s) for th, s in zip(thetas, seeds)]
    rows = []
    for d, (th, sim) in enumerate(zip(thetas, sims)):
        for (cond, obs), (tt, yy) in sim["curves"].items():
            rows += [{"draw": d, "condition": cond, "observable": obs, "time": float(a), "value": float(b), **th}
                     for a, b in zip(tt, yy)]
    pred = pd.DataFrame(rows)
    pred.to_parquet(out / "predictive.parquet", index=False)
    data = plan.data.copy()
    data["key"] = plan.keys
    if n:
        stats = pd.DataFrame([s["stats"] for s in sims])
        data["predictive_q05"] = [float(stats[k].quantile(0.05)) for k in plan.keys]
        data["predictive_median"] = [float(stats[k].median()) for k in plan.keys]
        data["predictive_q95"] = [float(stats[k].quantile(0.95)) for k in plan.keys]
        data["inside_90"] = (data["value"] >= data["predictive_q05"]) & (data["value"] <= data["predictive_q95"])
    summary = {
        "name": plan.name, "file": str(plan.spec_path), "seed": plan.seed, "method": "pyabc ABC-SMC, stochastic acceptor "
        "(IndependentNormalKernel, variance = uncertainty^2; Temperature schedule ending at 1)",
        "generations": int(t_last + 1), "generations_run_now": int(max(remaining, 0)),
        "population": plan.spec.population, "replicates": plan.spec.replicates,
        "temperatures": [float(e) for e in pops["epsilon"]], "simulations": [int(s) for s in pops["samples"]],
        "total_simulations": int(pops["samples"].sum()), "ess": ess,
        "sampling_wall_s": float(pops_all["wall_time"].fillna(0).sum()),  # calibration sample + all generations, across calls
        "wall_time_s": wall,  # this call (sampling now + predictive check + figures)
        "posterior_generations": sorted(ess_by_gen), "ess_by_generation": {str(t): e for t, e in ess_by_gen.items()},
        "exact": bool(exact),
        "parameters": params, "data": data.drop(columns=[c for c in data.columns if c == "key"]).to_dict(orient="records"),
    }
    write_json_atomic(out / "posterior.json", summary)
    (out / "posterior_medians.yaml").write_text(posterior_yaml(plan, params, t_last + 1), encoding="utf-8")
    if figures:
        for name, fig in (("posterior_marginals.png", marginals_figure(plan, post, params)),
                          ("posterior_pairs.png", pairs_figure(plan, post)),
                          ("predictive_check.png", predictive_figure(plan, pred, data))):
            fig.savefig(out / name, dpi=90)
    return CalibrationResult(out, plan, post, summary, int(max(remaining, 0)))


def posterior_sample(plan: Plan, history, generations: list[int]) -> tuple[pd.DataFrame, dict[int, float]]:
    """The weighted posterior sample in natural units: every generation at temperature 1 pooled.

    Each such generation is an importance sample of the same (exact) posterior; a small population
    now and then puts most of one generation's weight on a particle at the edge of the previous
    cloud, so the generations are pooled with weights (normalised weight × that generation's
    effective sample size) instead of trusting the last one alone."""
    frames, ess = [], {}
    for t in generations:
        df, w = history.get_distribution(m=0, t=t)
        w = np.asarray(w, dtype=float) / np.sum(w)
        ess[t] = float(1.0 / np.sum(w**2))
        f = pd.DataFrame({p: [plan.spec.parameters[p].to_natural(x) for x in df[p]] for p in plan.names})
        f["weight"], f["generation"] = w * ess[t], t
        frames.append(f)
    post = pd.concat(frames, ignore_index=True)
    post["weight"] /= post["weight"].sum()
    return post, ess


def _round(v: float) -> float:
    return float(f"{v:.3g}")


def posterior_yaml(plan: Plan, params: dict, generations: int) -> str:
    """The posterior medians as a nested scenario fragment, each with its 90 % interval as a comment."""
    nested: dict = {}
    for p, s in params.items():
        node = nested
        keys = p.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = int(round(s["median"])) if plan.integer.get(p) else _round(s["median"])
    text = yaml.safe_dump(nested, sort_keys=False, default_flow_style=False)
    lines = []
    for line in text.splitlines():
        key = line.strip().split(":")[0]
        match = [p for p in params if p.split(".")[-1] == key and ":" in line and line.split(":", 1)[1].strip()]
        if match:
            s = params[match[0]]
            line += f"   # posterior median; 90 % interval {_round(s['q05']):g}–{_round(s['q95']):g}; was {s['base_value']}"
        lines.append(line)
    head = (f"# Posterior medians from `nksim calibrate {plan.spec_path}` ({generations} ABC-SMC generations,\n"
            f"# {plan.spec.population} particles, seed {plan.seed}). Paste into a scenario to use them.\n")
    return head + "\n".join(lines) + "\n"


def load_posterior(out: str | Path) -> pd.DataFrame:
    """posterior.parquet of a calibration folder."""
    return read_parquet(Path(out) / "posterior.parquet")
