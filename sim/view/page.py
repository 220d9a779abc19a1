"""The Solara page of `nksim view` (plain Solara, laid out like Mesa's SolaraViz: see docs/view.md).

The scenario comes from the environment (NKSIM_VIEW_SCENARIO, NKSIM_VIEW_SEED), set by `nksim view`.
Each browser tab gets its own ViewSession (model, history, speed), built on first render.
"""
from __future__ import annotations

import os
import time
import traceback

import reacton.ipyvuetify as rv
import solara
import solara.lab

from ..scenario import ScenarioError
from . import render
from .session import ViewSession

SETTLE_S = 0.4  # a slider is committed (the model rebuilt) once it rests this long
FIELDS = {"IFN-γ": "ifng", "TGF-β": "tgfb", "IL-15": "il15", "none": None}
CSS = """
.nksim-legend span.sw { display:inline-block; width:12px; height:12px; margin:0 4px 0 10px; vertical-align:middle;
                        border:1px solid #0004; }
.nksim-tissue, .nksim-projection, .nksim-tissue img, .nksim-projection img { image-rendering: pixelated; }
.nksim-readout { font-family: monospace; font-size: 13px; display:block; }
"""


def _rgb(c) -> str:
    return f"rgb({int(c[0])},{int(c[1])},{int(c[2])})"


def legend_html(info: dict, antigen: str, effector: str) -> str:
    lut = render.lut("antigen")
    sw = lambda c, t: f'<span class="sw" style="background:{_rgb(c)}"></span>{t}'  # noqa: E731
    items = [sw(lut[40], f"{antigen}+ low"), sw(lut[215], f"{antigen}+ high"), sw(render.ANTIGEN_NEG, f"{antigen}−"),
             sw(render.DOOMED, "lethally hit")]
    items += [sw(render.NK_COLOURS[k], f"{effector} {k}") for k in render.NK_STATE_CODE]
    field = info.get("field")
    if field:
        heat = render.lut("heat")
        grad = ",".join(_rgb(heat[i]) for i in (0, 64, 128, 192, 255))
        items.append(f'<span style="margin-left:10px">{render.FIELD_LABELS[field]}: 0 '
                     f'<span style="display:inline-block;width:80px;height:10px;vertical-align:middle;'
                     f'background:linear-gradient(90deg,{grad})"></span> {info["field_max"]:.3g} ng/mL</span>')
    scale = ("downsampled: one pixel covers several sites (highest-antigen cell shown)" if info["downsampled"]
             else f"1 site = {info['display_w'] // max(1, info['bx'])} px")
    items.append(f'<span style="margin-left:10px;color:#666">{scale}</span>')
    return '<div class="nksim-legend" style="font-size:12px;line-height:20px">' + " ".join(items) + "</div>"


@solara.component
def ParamSlider(label: str, value: float, lo: float, hi: float, step: float, on_change, integer: bool = False,
                classes: list[str] | None = None):
    """A slider whose value is committed once it rests for SETTLE_S (dragging or keys): one rebuild per change."""
    shown = solara.use_reactive(value)
    solara.use_effect(lambda: shown.set(value), [value])

    def settle():
        mine = shown.value
        time.sleep(SETTLE_S)
        if shown.value == mine and mine != value:  # not moved since, and not what the model has
            on_change(int(mine) if integer else float(mine))

    solara.lab.use_task(settle, dependencies=[shown.value], prefer_threaded=True)
    v = int(shown.value) if integer else shown.value
    with solara.Column(gap="0px", classes=classes or []):
        solara.Text(f"{label}: {v:g}" if not integer else f"{label}: {v}", style={"font-size": "13px"})
        rv.Slider(v_model=shown.value, on_v_model=shown.set, min=lo, max=hi, step=step, thumb_label=True,
                  hide_details=True, dense=True, class_="nksim-slider")


@solara.component
def Page():
    scenario = os.environ.get("NKSIM_VIEW_SCENARIO", "scenarios/quickstart.yaml")
    seed = os.environ.get("NKSIM_VIEW_SEED")
    sess: ViewSession = solara.use_memo(lambda: ViewSession(scenario, seed=int(seed) if seed else None), [])
    tick = solara.use_reactive(0)
    playing = solara.use_reactive(False)
    field = solara.use_reactive("TGF-β")
    zslice = solara.use_reactive(sess.model.shape[2] // 2)
    spf = solara.use_reactive(max(1, int(round(60.0 / sess.model.dt))))  # steps per frame: 1 sim-hour
    error = solara.use_reactive("")

    def bump():
        tick.set(tick.value + 1)

    def do_step():
        try:
            sess.advance(spf.value)
        except Exception as e:  # a numerical fault: show it, keep the page
            error.set(f"step failed: {e}")
            traceback.print_exc()
        bump()

    def do_reset():
        playing.set(False)
        sess.build()
        error.set("")
        bump()

    def set_param(path, value):
        playing.set(False)
        try:
            sess.build(**{path: value})
            error.set("")
        except ScenarioError as e:
            error.set(str(e))
        bump()

    def play_loop():
        while playing.value:
            t0 = time.perf_counter()
            do_step()
            if error.value:
                playing.set(False)
            time.sleep(max(0.0, 0.02 - (time.perf_counter() - t0)))  # at most ~50 frames/s

    solara.lab.use_task(play_loop, dependencies=[playing.value], prefer_threaded=True)

    _ = tick.value  # re-render on every frame
    m = sess.model
    cfg = m.config
    three_d = cfg.domain.dims == 3 and m.shape[2] > 1
    antigen = cfg.tumor.antigen.name or "antigen"
    effector = "CAR-T" if cfg.effector == "cart" else "CAR-NK"
    fname = FIELDS[field.value]
    px = 420 if three_d else render.MAX_PX  # 3D: slice and projection side by side
    slice_png, info = sess.frame(fname, "slice", zslice.value if three_d else 0, max_px=px)
    frame_ms = sess.speed.frame_ms
    proj_png = sess.frame(fname, "max", max_px=px)[0] if three_d else None
    if three_d:
        frame_ms += sess.speed.frame_ms
    curves = sess.curves(max_age_s=1.0 if playing.value else 0.0)

    solara.Style(CSS)
    solara.Title(f"nksim view · {cfg.name}")
    with solara.Row(style={"align-items": "flex-start", "gap": "16px", "padding": "8px", "flex-wrap": "nowrap"}):
        with solara.Column(style={"width": "380px", "min-width": "380px"}, gap="8px"):
            solara.HTML("h3", unsafe_innerHTML=f"nksim · {cfg.name}", style="margin:4px 0 0 4px")
            with solara.Card("Controls"):
                with solara.Row(justify="space-between"):
                    solara.Button("Reset", color="primary", on_click=do_reset, classes=["nksim-reset"])
                    solara.Button("❚❚" if playing.value else "▶", color="primary", classes=["nksim-play"],
                                  on_click=lambda: playing.set(not playing.value))
                    solara.Button("Step", color="primary", on_click=do_step, disabled=playing.value,
                                  classes=["nksim-step"])
                solara.SliderInt(f"steps per frame (dt = {m.dt:g} min)", value=spf, min=1, max=max(300, spf.value * 5))
                solara.Text(sess.readout(), classes=["nksim-readout", "nksim-time"])
                sp = sess.speed
                solara.Text(f"speed: {sp.steps_per_s:,.0f} steps/s · {sp.sim_h_per_s:.2f} sim-h per wall-s",
                            classes=["nksim-readout", "nksim-speed"])
                solara.Text(f"frame (model → PNG): {frame_ms:.0f} ms", classes=["nksim-readout"])
                solara.Text(f"tumor {m.tumor_count():,} · {effector} {m.nk_live():,} · build #{sess.builds}",
                            classes=["nksim-readout", "nksim-counts"])
                if error.value:
                    solara.Error(error.value)
            with solara.Card("Model parameters (a change rebuilds the model at t = 0)"):
                for p in sess.params:
                    cur = sess.value(p.path)
                    on = (lambda path: (lambda v: set_param(path, v)))(p.path)
                    cls = ["nksim-param", "nksim-param-" + p.path.replace(".", "-")]
                    if p.kind == "select":
                        solara.Select(p.label, values=list(p.values), value=cur, on_value=on, classes=cls)
                    else:
                        ParamSlider(p.label, cur, p.lo, p.hi, p.step, on, integer=p.kind == "int", classes=cls)
                solara.Text(f"seed {sess.seed} · {scenario}", style={"font-size": "11px", "color": "#777"})
            with solara.Card("View"):
                solara.Select("heat layer (field)", values=list(FIELDS), value=field)
                if three_d:
                    solara.SliderInt("z slice", value=zslice, min=0, max=m.shape[2] - 1)
        with solara.Column(gap="6px", style={"flex": "1 1 auto", "min-width": "0"}):
            with solara.Row(style={"flex-wrap": "wrap", "gap": "12px"}):
                with solara.Column(gap="2px"):
                    solara.Text(f"z = {info['z']} of {m.shape[2]} (slice)" if three_d else "tissue (2D)",
                                style={"font-size": "12px"})
                    solara.Image(slice_png, width=f"{info['display_w']}px", classes=["nksim-tissue"])
                if three_d:
                    with solara.Column(gap="2px"):
                        solara.Text("maximum projection along z", style={"font-size": "12px"})
                        solara.Image(proj_png, width=f"{info['display_w']}px", classes=["nksim-projection"])
            solara.HTML(unsafe_innerHTML=legend_html(info, antigen, effector))
            solara.Image(curves, classes=["nksim-curves"])
