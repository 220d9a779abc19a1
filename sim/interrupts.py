"""Ctrl-C and SIGTERM: a simulation stops between two steps, a command exits 130 or 143 with one line.

Standard library only (sim/errors.py's `Terminated` is the SIGTERM form of KeyboardInterrupt).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

from .errors import Terminated


def _interrupt_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _raise_terminated(signum, frame):
    raise Terminated()


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises `Terminated` in the main thread, the way SIGINT raises KeyboardInterrupt."""
    signal.signal(signal.SIGTERM, _raise_terminated)


class SafePoints:
    """The stop a signal asked for, raised only where `check` is called (between two steps)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def check(self) -> None:
        if self.signum is not None:
            raise _interrupt_for(self.signum)


@contextlib.contextmanager
def interrupts_between_steps() -> Iterator[SafePoints]:
    """Within: Ctrl-C and SIGTERM only set a flag that `check()` turns into KeyboardInterrupt/Terminated,
    so a simulation stops between steps. Raised from the handler, the exception lands wherever the main
    thread is: inside a Numba dispatcher's C code it was swallowed (the run went on: 2 of 65 signals in a stress run) or
    became a SystemError (1 of 65; see the signal module's note on handlers and exceptions, bpo-42340). A second
    signal raises at once. Only the handlers that raise (Python's SIGINT default, `raise_on_sigterm`)
    are replaced, and only in the main thread; others (ignored, a user's own) are left alone."""
    stop = SafePoints()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def flag(signum, frame):
        if stop.signum is not None:
            raise _interrupt_for(signum)
        stop.signum = signum

    raising = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_terminated}
    replaced = {sig: signal.getsignal(sig) for sig, h in raising.items() if signal.getsignal(sig) is h}
    for sig in replaced:
        signal.signal(sig, flag)
    try:
        yield stop
    finally:  # restored with both signals held back where the platform can (not Windows), so none meets a half-restored pair
        mask = getattr(signal, "pthread_sigmask", None)
        held = mask(signal.SIG_BLOCK, tuple(raising)) if mask else None
        try:
            for sig, h in replaced.items():
                signal.signal(sig, h)
        finally:
            if mask:
                mask(signal.SIG_SETMASK, held)  # one held meanwhile raises here, as usual
    stop.check()  # a signal during the last step


def interrupt_in_chain(e: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt an exception was raised from, if any (C code that saw one mid-call, such as
    a Numba dispatcher, reports `SystemError: ... returned a result with an exception set` from it)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return None


def run_steps(model, n: int, progress: Callable | None = None) -> None:
    """`n` steps of `model` (`progress(model)` after each), stopped between steps by Ctrl-C/SIGTERM."""
    with interrupts_between_steps() as stop:
        for _ in range(n):
            model.step()
            if progress is not None:
                progress(model)
            stop.check()
