"""CPU cost of the CAR-NK step alone (ns per live cell-step): `python benchmarks/nk_step_cost.py [3d_1e4 3d_1e6 cohort]`.

Cases: 3D lesions of 1e4 and 1e6 tumor cells with 1e5 CAR-NK (`cases.case_nk_step`: 2 windows of 20
steps after 20 of warm-up), and the 1e7/kg CD19 cohort patient 0 on day 10 (2D, ~13,000 CAR-NK, one
simulated day). Prints one line per case."""
import sys
import warnings

warnings.simplefilter("ignore")
sys.path.insert(0, ".")
from benchmarks.cases import case_nk_step, nk_step_ns  # noqa: E402
from sim.model import TumorImmuneModel  # noqa: E402

for w in sys.argv[1:] or ["3d_1e4", "3d_1e6", "cohort"]:
    if w.startswith("3d"):
        r = case_nk_step({"n_tumor": int(float(w[3:])), "n_nk": 100_000, "repeats": 2})
        ns, per = sum(r["ns"]) / len(r["ns"]), sum(r["cells"]) / len(r["cells"])
    else:
        from sim.cohort.spec import load_cohort
        from sim.scenario import resolve

        plan = load_cohort("scenarios/cohort_cd19_cb_il15.yaml")
        run = next(r for r in plan.runs if r.patient == 0 and r.arm == "dose_1e7")
        eff = resolve(plan.scenarios[run.run_id])
        m = TumorImmuneModel(eff, rng=eff.scenario.seed)
        for _ in range(720 * 10):
            m.step()
        ns, per = nk_step_ns(m, 720)
    print(f"{w}: {ns:.1f} ns per cell-step ({per:.0f} cells/step)", flush=True)
