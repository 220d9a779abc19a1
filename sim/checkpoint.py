"""Checkpoints for long runs: the complete model state (arrays, clock, RNG, recorded series) in one
.npz written atomically, so an interrupted run resumes bit-identically."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .kernels.step import NK_EMPTY
from .model import TumorImmuneModel
from .scenario.resolve import Effective, resolve

_ARRAYS = ("occ", "vox_tumor", "vox_stroma", "tstats", "counters")


def save(model, path: str | Path, snapshots: list[dict] | None = None) -> None:
    """Write the model's full state (and snapshots taken so far) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"m_{k}": getattr(model, k) for k in _ARRAYS}
    for pop_name in ("tumor", "nk"):
        pop = getattr(model, pop_name)
        n = pop.used
        for k in pop.FIELDS:
            arrays[f"{pop_name}_{k}"] = getattr(pop, k)[:n]
        if pop_name == "tumor":
            arrays["tumor_free_slots"] = pop.free_slots[: pop.n_free]
    arrays["fields_values"] = model.fields.values
    arrays["fields_sources"] = model.fields.sources  # secretion accumulated since the last field step
    for i, snap in enumerate(snapshots or []):
        for k, v in snap.items():
            arrays[f"snap{i}__{k}"] = np.asarray(v)
    meta = {
        "config": model.config.model_dump(mode="json"),
        "document": model.effective.document,  # what the user wrote + its override layers: resolved again on load
        "layers": [list(layer) for layer in model.effective.layers],
        "seed": model.seed,
        "now_min": model.now_min,
        "steps": model.steps,
        "next_output": model._next_output,
        "nk_exposure_min": model.nk_exposure_min,
        "rng": model.rng.bit_generator.state,
        "random": list(model.random.getstate()[1]) + [model.random.getstate()[0], model.random.getstate()[2]],
        "model_vars": model.datacollector.model_vars,
        "n_snapshots": len(snapshots or []),
        "dead_kills": np.concatenate(model._dead_kills).tolist() if model._dead_kills else [],
        "therapy": model.therapy.state_dict(),
        "therapy_state": getattr(model, "therapy_state", {}),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load(path: str | Path):
    """Rebuild a model (and its snapshots) from a checkpoint written by `save`."""
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(bytes(data.pop("meta")).decode())
    eff: Effective = resolve(meta["document"])
    for origin, overrides in meta["layers"]:
        eff = eff.with_layer(origin, overrides)
    model = TumorImmuneModel(eff.with_layer("checkpoint", {"nk.dose.cells": 0}), rng=meta["seed"])  # cells come from the arrays
    model.config, model.effective = eff.scenario, eff
    for k in _ARRAYS:
        getattr(model, k)[...] = data[f"m_{k}"]

    for pop_name in ("tumor", "nk"):
        pop = getattr(model, pop_name)
        n = data[f"{pop_name}_site"].shape[0]
        pop.used = 0
        pop.ensure(n)
        pop.used = n
        for k in pop.FIELDS:
            if k == "free_slots":
                continue
            getattr(pop, k)[:n] = data[f"{pop_name}_{k}"]
            getattr(pop, k)[n:] = pop.FIELDS[k][1]
        if pop_name == "tumor":
            fs = data["tumor_free_slots"]
            pop.free_slots[: fs.size] = fs
            pop.n_free = int(fs.size)
    model.pack_bitmaps()
    model.fields.values[...] = data["fields_values"]
    model.fields.refresh_nonzero()
    if "fields_sources" in data:
        model.fields.sources[...] = data["fields_sources"]
    for a in list(model.agents):
        a.remove()
    model._nk_agents = []
    for i in np.flatnonzero(model.nk.state[: model.nk.used] != NK_EMPTY):
        model._new_agent(int(i))
    model.now_min = meta["now_min"]
    model.steps = meta["steps"]
    model._next_output = meta["next_output"]
    model.nk_exposure_min = meta["nk_exposure_min"]
    model.rng.bit_generator.state = meta["rng"]
    r = meta["random"]
    model.random.setstate((r[-2], tuple(r[:-2]), r[-1]))
    model.datacollector.model_vars = {k: list(v) for k, v in meta["model_vars"].items()}
    model._dead_kills = [np.asarray(meta["dead_kills"], dtype=np.int64)] if meta["dead_kills"] else []
    model.therapy.load_state_dict(meta.get("therapy") or {})
    model.therapy_state = meta.get("therapy_state", {})  # drug occupancies, cytokine exposure (sim/therapy)
    snaps = []
    for i in range(meta["n_snapshots"]):
        pre = f"snap{i}__"
        snaps.append({k[len(pre):]: v for k, v in data.items() if k.startswith(pre)})
    return model, snaps
