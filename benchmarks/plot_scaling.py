"""Log–log plot of wall (and CPU) time per simulated day against tumor size, from benchmarks/results.json.

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


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else ROOT / "benchmarks" / "results.json"
    dst = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "figures" / "scaling.png"
    R = json.loads(src.read_text())
    s = R["scaling"]
    n = [x["n_tumor"] for x in s]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.loglog(n, [x["first_6h_wall_s_per_day"] for x in s], "o-", label="wall, first 6 h × 4 (all sizes)")
    ax.loglog(n, [x["first_6h_cpu_s_per_day"] for x in s], "s--", label="CPU, first 6 h × 4")
    full = [x for x in s if x["wall_s_per_day"] and abs(x["wall_s_per_day"] - x["first_6h_wall_s_per_day"]) > 0 and x["n_tumor"] >= 1e6]
    if full:
        ax.loglog([x["n_tumor"] for x in full], [x["wall_s_per_day"] for x in full], "D", ms=8, mfc="none", label="wall, full day")
    ref = s[0]["first_6h_wall_s_per_day"]
    ax.loglog(n, [ref * (k / n[0]) for k in n], ":", color="grey", label="∝ tumor cells")
    ax.axhline(30, color="tab:red", lw=0.8, ls="--")
    ax.axhline(120, color="tab:red", lw=0.8, ls="-.")
    ax.text(n[0], 30 * 1.08, "target 1e6: 30 s", color="tab:red", fontsize=8)
    ax.text(n[0], 120 * 1.08, "target 1e7: 120 s", color="tab:red", fontsize=8)
    ax.set_xlabel("tumor cells (3D lesion, 1e5 IL-15-armored CAR-NK, 3 fields)")
    ax.set_ylabel("seconds per simulated day")
    la = R["machine"]["loadavg_start"][0]
    ax.set_title(f"nksim scaling, {R['machine']['cpus']} CPUs (load avg {la:.1f} at start)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(dst, dpi=120)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
