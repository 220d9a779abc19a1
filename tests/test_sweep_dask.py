"""A sweep through a real Dask cluster: `dask scheduler` and two `dask worker` processes started
from the venv on 127.0.0.1, the real engine on the workers, results identical to running inline."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim.sweep import run_sweep

from helpers import tiny_sweep_base

BIN = Path(sys.executable).parent
BASE = {
    **tiny_sweep_base(seed=3),
    "sweep": {"parameters": {"nk.il15.mode": ["none", "secreted"], "nk.persistence.half_life_days": [2.0, 9.0]},
              "replicates": 2},
}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler on a free port of 127.0.0.1 and two single-thread workers, stopped afterwards."""
    if not (BIN / "dask").exists():
        pytest.skip("the dask command is not installed next to this Python")
    sched_file = tmp_path / "scheduler.json"
    procs = [_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log")]
    try:
        t0 = time.monotonic()
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() - t0 < 60, "scheduler did not start"
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(_start([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                 "--no-dashboard", "--name", f"w{i}"], tmp_path / f"worker{i}.log"))
        from distributed import Client

        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=90)
        yield address
    finally:
        _stop(procs)


def test_sweep_through_dask_scheduler_and_worker_processes(tmp_path, cluster):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(BASE, sort_keys=False))
    out = tmp_path / "remote"
    res = run_sweep(spec, out, scheduler=cluster, progress=False)
    assert res.complete and (res.done, res.failed) == (8 + 2, 0)  # + the untreated control per replicate seed
    man = json.loads((out / "manifest.json").read_text())
    assert man["invocations"][-1]["executor"] == cluster and man["invocations"][-1]["workers"] == 2
    workers = {r["worker"] for r in man["runs"]}
    assert all(w and int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)  # ran in the worker processes
    assert len(workers) == 2
    ref = tmp_path / "inline"
    run_sweep(spec, ref, scheduler="inline", progress=False)
    for f in ("summary.parquet", "timeseries.parquet"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
