"""A correction to Numba's dead-code elimination that the kernels rely on (installed on import of
`sim.kernels`, before any kernel is compiled; cached kernels were compiled with it too).

Numba removes an array write as dead unless the array may alias a function argument. Its alias
analysis (`numba.core.ir_utils.find_potential_aliases`) makes one pass over the blocks in storage
order, so an alias defined in a block stored later than its use is missed: `b = a` in block 7, then
`c = b.field` in block 3 leaves `c` unknown, and `c[i] = v` is deleted. Inlining creates exactly that
(an `inline='always'` callee's blocks, then an inlined overload such as the kernel stream's
`random()` splitting the caller's block into a new one at the end), so without this a kernel could
silently lose the writes of an inlined rule that takes a record (`start_tumor_cell`) or gets a
conditional-expression argument (Numba 0.68; `tests/test_kernel_records.py` has the cases).

The fix repeats the analysis until the alias sets stop growing. More aliases only means fewer
statements removed, so a kernel's results can only become correct; its speed is unchanged.
"""
from __future__ import annotations

from numba.core import ir_utils

_MARK = "_nksim_fixpoint"


def _size(alias_map, arg_aliases) -> tuple[int, int]:
    return len(arg_aliases), sum(len(v) for v in alias_map.values())


def install() -> bool:
    """Make `ir_utils.find_potential_aliases` iterate to a fixpoint; True if installed now."""
    orig = ir_utils.find_potential_aliases
    if getattr(orig, _MARK, False):
        return False

    def find_potential_aliases(blocks, args, typemap, func_ir, alias_map=None, arg_aliases=None):
        alias_map, arg_aliases = orig(blocks, args, typemap, func_ir, alias_map, arg_aliases)
        while True:
            before = _size(alias_map, arg_aliases)
            alias_map, arg_aliases = orig(blocks, args, typemap, func_ir, alias_map, arg_aliases)
            if _size(alias_map, arg_aliases) == before:
                return alias_map, arg_aliases

    setattr(find_potential_aliases, _MARK, True)
    find_potential_aliases.__doc__ = orig.__doc__
    ir_utils.find_potential_aliases = find_potential_aliases  # remove_dead looks it up here
    return True
