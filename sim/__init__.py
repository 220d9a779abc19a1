"""nksim: agent-based simulator of CAR-NK cell therapy against tumors.

`sim.load_scenario(path)` and `sim.run(scenario) -> Result` mirror `nksim run`;
`sim.load_run(folder) -> Run` reads a run folder back (time series, summary, snapshots; docs/outputs.md).
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import sim` stays cheap, and kernels compile only when a model is used.
    if name in ("run", "run_arms", "Result", "warm_up"):
        from . import api

        return getattr(api, name)
    if name in ("load_scenario", "resolve", "Scenario", "ScenarioError"):
        from . import scenario

        return getattr(scenario, name)
    if name in ("load_run", "Run"):
        from . import runs

        return getattr(runs, name)
    if name == "TumorImmuneModel":
        from .model import TumorImmuneModel

        return TumorImmuneModel
    raise AttributeError(name)
