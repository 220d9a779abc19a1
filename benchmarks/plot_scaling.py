"""Log–log plots of wall time per simulated day from benchmarks/results.json: against tumor size (3D
lesions 1e4–1e7 with 1e5 CAR-NK, and the 1e8 lesion with 1e6) and against CAR-NK count at a fixed lesion,
with issue 15's targets.

    python benchmarks/plot_scaling.py [results.json] [docs/figures/scaling.png]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: issue 15's wall-time targets per simulated day: (tumor cells, CAR-NK cells, seconds)
TARGETS = ((1e6, 1e5, 30.0), (1e7, 1e5, 25.0), (1e8, 1e6, 300.0))


def _tumor_panel(ax, R) -> None:
    s = R["scaling"]
    n = [x["n_tumor"] for x in s]
    nk = s[0].get("n_nk", 1e5)  # every lesion of the series has the same CAR-NK dose
    ax.loglog(n, [x["wall_s_per_day"] for x in s], "o-", label=f"wall, {nk:.0e} CAR-NK")
    ax.loglog(n, [x["cpu_s_per_day"] for x in s], "s--", ms=4, label="CPU (both threads)")
    hg = R.get("lesion_huge", {})
    if "error" not in hg and hg.get("wall_s_per_day"):
        ax.loglog([hg["n_tumor"]], [hg["wall_s_per_day"]], "D", ms=8, color="tab:purple",
                  label=f"wall, {hg['n_nk']:.0e} CAR-NK ({hg['sim_min'] / 60:.0f} h projected)")
    ref = s[0]["wall_s_per_day"]
    xs = n + ([hg["n_tumor"]] if hg.get("n_tumor") else [])
    ax.loglog(xs, [ref * (k / n[0]) for k in xs], ":", color="grey", label="∝ tumor cells")
    for i, (nt, nn, sec) in enumerate(TARGETS):
        ax.plot([nt], [sec], "v", color="tab:red", ms=9, mfc="none", label="target (issue 15)" if i == 0 else None)
        ax.annotate(f"≤ {sec:.0f} s", (nt, sec), textcoords="offset points", xytext=(6, 6), color="tab:red", fontsize=8)
    ax.set_xlabel("tumor cells (3D lesion, 3 fields)")
    ax.set_ylabel("seconds per simulated day")
    ax.set_title("against tumor size", fontsize=10)


def _nk_panel(ax, R) -> None:
    k = R["nk_scaling"]
    n, w = k["n_nk"], [x * 4 for x in k["wall_s_6h"]]  # first 6 h × 4
    ax.loglog(n, w, "o-", color="tab:green", label="wall, first 6 h × 4")
    ax.loglog(n, [w[0] * (x / n[0]) for x in n], ":", color="grey", label="∝ CAR-NK cells (the target's bound)")
    for a, b, r in zip(n, n[1:], k.get("ratios", [k.get("ratio")])):
        if r:
            ax.annotate(f"{r:.1f}×", ((a * b) ** 0.5, w[n.index(a)] * r ** 0.5), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
    ax.set_xlabel(f"CAR-NK cells (3D lesion of {k['n_tumor']:.0e} tumor cells)")
    ax.set_ylabel("seconds per simulated day")
    ax.set_title("against CAR-NK count", fontsize=10)


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else ROOT / "benchmarks" / "results.json"
    dst = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "figures" / "scaling.png"
    R = json.loads(src.read_text())
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.4))
    _tumor_panel(a, R)
    _nk_panel(b, R)
    for ax in (a, b):
        ax.legend(fontsize=7.5, loc="upper left")
        ax.grid(True, which="both", alpha=0.3)
    la = R["machine"]["loadavg_start"][0]
    fig.suptitle(f"nksim wall time per simulated day, {R['machine']['cpus']} CPUs (load avg {la:.1f} at start, "
                 f"{R.get('started', '')[:16]})", fontsize=10)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(dst, dpi=120)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
