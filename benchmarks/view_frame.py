"""Frame time of `nksim view` (model → PNG: extract the arrays, rasterise, encode) at 1e4 and 1e5 cells.

    PYTHONPATH=. python benchmarks/view_frame.py

Median of 9 frames after 3 model steps, TGF-β heat layer on; docs/view.md quotes its output.
"""
import os
import time

import numpy as np

from sim.model import TumorImmuneModel
from sim.view import render
def bench(label, cfg):
    """Print the median frame time (and its parts) of one lesion."""
    m = TumorImmuneModel(cfg)
    for _ in range(3): m.step()
    res = {}
    for mode in (("slice","max") if m.shape[2]>1 else ("slice",)):
        ts=[]; parts=[]
        for _ in range(9):
            t0=time.perf_counter(); L=render.extract(m,"tgfb"); t1=time.perf_counter(); img,info=render.rasterise(L,mode); t2=time.perf_counter(); b=render.png(img); t3=time.perf_counter()
            ts.append(t3-t0); parts.append((t1-t0,t2-t1,t3-t2))
        i=int(np.argsort(ts)[4])
        res[mode]="%.0f ms (extract/raster/png %s) img %s down=%s" % (ts[i]*1e3, [round(x*1e3,1) for x in parts[i]], img.shape[:2], info['downsampled'])
    print(label, "| tumor", m.tumor_count(), "NK", m.nk_live(), "lattice", m.shape, res, flush=True)
print("load average", os.getloadavg(), "cores", os.cpu_count())
bench("2D 1e4", {"domain":{"dims":2,"size_um":[3000,3000],"spacing_um":20}, "tumor":{"init":{"shape":"nodule","count":10000}}, "nk":{"dose":{"cells":1000,"placement":"rim"}}})
bench("2D 1e5", {"domain":{"dims":2,"size_um":[16000,16000],"spacing_um":20}, "tumor":{"init":{"shape":"nodule","count":100000}}, "nk":{"dose":{"cells":10000,"placement":"rim"}}})
bench("3D 1e4", {"domain":{"dims":3,"size_um":[1000,1000,1000],"spacing_um":20}, "tumor":{"init":{"shape":"nodule","count":10000}}, "nk":{"dose":{"cells":1000,"placement":"rim"}}})
bench("3D 1e5", {"domain":{"dims":3,"size_um":[1600,1600,1600],"spacing_um":20}, "tumor":{"init":{"shape":"nodule","count":100000}}, "nk":{"dose":{"cells":10000,"placement":"rim"}}})
