"""Numba kernels: what cells DO. One small function per mechanism, shared by the batch step and
the Mesa agent API. Kernels know only arrays and numbers, never the model or the agents."""

from .cache_guard import guard as _guard_cache
from .numba_fixes import install as _install_numba_fixes

_install_numba_fixes()  # before any kernel is compiled: Numba's dead-code elimination must see every alias
_guard_cache()  # before any kernel is loaded from Numba's cache: drop it if a kernel source changed
