"""Errors nksim reports as one line and exit status 2 (like ScenarioError): the user has to choose.

They import nothing but the standard library, so the low-level writers (sim/safe_io.py) can raise them.
"""
from __future__ import annotations


class NksimError(Exception):
    """Base of the refusals below; `nksim` prints the message and exits with status 2."""


class OutputError(NksimError, ValueError):
    """An output target nksim will not write to (a file, a device, the working directory, a folder of
    someone else's files, an earlier run without --overwrite) or cannot write to (read-only)."""


class CheckpointError(NksimError, ValueError):
    """A checkpoint that does not belong to this run, or does not verify."""


class NumericalError(NksimError, ArithmeticError):
    """A field or a per-cell level became non-finite or passed its ceiling; the message names the
    parameters that drive it."""


class RunFolderError(NksimError, ValueError):
    """A folder that is not the run output it was given as (`sim.load_run`, `nksim export`)."""


class DomainEdgeWarning(UserWarning):
    """The tumor reached the domain boundary or filled most of the domain: its growth is limited by
    the section size (sim/domain_watch.py). A warning, not a refusal: the run goes on."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's stop, `kill`), raised where Ctrl-C's KeyboardInterrupt would be, so a
    terminated run ends the same way: checkpoint kept, workers stopped, one line; exit 143, not 130."""


def interrupted_status(e: BaseException) -> int:
    """The exit status of an interrupted command: 128 + the signal (SIGTERM 15, SIGINT 2)."""
    return 143 if isinstance(e, Terminated) else 130
