"""Software prefetch: ask the CPU to start loading a cell's data a few cells ahead.

The NK step visits cells in random order, so on a large lesion its reads of the field grids
(tens of MB) miss every cache level; prefetching the voxels of the next cells overlaps those
misses with the work on the current one. Prefetching never changes a result."""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint: load element `idx` of `arr` into the cache: flat (C order) for a contiguous array, along
    its stride for a 1D strided one (a field of a packed record block, `state.packed_block`)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    if arr.layout != "C" and arr.ndim != 1:
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        if aty.layout == "C":
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        else:
            stride = cgutils.unpack_tuple(builder, ary.strides, 1)[0]
            k = context.cast(builder, args[1], signature.args[1], types.intp)
            ptr = builder.gep(builder.bitcast(ary.data, i8p), [builder.mul(k, stride)])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read, high temporal locality, data cache
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def unmanaged(typingctx, arr):
    """A view of `arr` without a reference count (no meminfo): Numba cannot drop every reference-count
    update of arrays passed into the functions it inlines into a large kernel, and each one on a
    counted array is an atomic add; on a view they are a null test. Only for a local of a kernel while
    a record or argument keeps `arr` alive (the view must not be stored or returned)."""
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        dst = context.make_array(signature.return_type)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, name, getattr(src, name))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()

    return sig, codegen


@intrinsic
def keep_alive(typingctx, obj):
    """A use of `obj` that compiles to nothing: a kernel calls it last, so a structref or array that an
    uncounted view (`unmanaged`, `streams.stream_view`) reads is not freed before then."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.void(obj), codegen
