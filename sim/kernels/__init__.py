"""Numba kernels: what cells DO. One small function per mechanism, shared by the batch step and
the Mesa agent API. Kernels know only arrays and numbers, never the model or the agents."""
