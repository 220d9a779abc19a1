"""CPU cost of the CAR-NK step alone (ns per live cell-step): `python benchmarks/nk_step_cost.py [3d_1e4 3d_1e6 cohort]`.

Cases: 3D lesions of 1e4 and 1e6 tumor cells with 1e5 CAR-NK (40 steps after 20 of warm-up), and the
1e7/kg CD19 cohort patient 0 on day 10 (2D, ~13,000 CAR-NK). Prints one line per case."""
import sys
import time
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, ".")
from benchmarks.cases import nk_step_ns
from benchmarks.scenarios_lib import lesion
from sim.model import TumorImmuneModel

def time_nk(m, steps):
    return nk_step_ns(m, steps)


which = sys.argv[1:] or ["3d_1e4", "3d_1e6", "cohort"]
for w in which:
    if w.startswith("3d"):
        n = int(float(w[3:]))
        m = TumorImmuneModel(lesion(n, 100_000), rng=1)
        for _ in range(20): m.step()
        ns, per = time_nk(m, 40)
    else:
        from sim.cohort.spec import load_cohort
        from sim.scenario import resolve
        plan = load_cohort("scenarios/cohort_cd19_cb_il15.yaml")
        r = [r for r in plan.runs if r.patient == 0 and r.arm == "dose_1e7"][0]
        eff = resolve(plan.scenarios[r.run_id])
        m = TumorImmuneModel(eff, rng=eff.scenario.seed)
        for _ in range(720 * 10): m.step()
        ns, per = time_nk(m, 720)
    print(f"{w}: {ns:.1f} ns per cell-step ({per:.0f} cells/step)", flush=True)
