"""`nksim view`: an interactive Solara page that watches a scenario run (docs/view.md).

render.py   model arrays → RGB image → PNG (no per-agent Python), live-curve figure
session.py  one page's model: built from the scenario + overrides, stepped with model.step(), timed
page.py     the Solara page (imports solara; only loaded by the server)
cli.py      `nksim view SCENARIO [--port P]`: warm the kernels, serve the page on 127.0.0.1
"""
