package io.diffquant.engine.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Conversions from little-endian tensor bytes in a (memory-mapped) {@link MemorySegment} into float32 arrays, in
 * chunks, without staging the whole tensor in the heap: contiguous ranges and strided views (PyTorch's
 * size/stride/storage_offset, see {@code torch.Tensor.as_strided}). F16/BF16 are widened exactly, F64 and integers
 * are rounded or cast as {@code tensor.float()} does.
 */
public final class MappedTensors {
    private MappedTensors() {}

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int CHUNK = 1 << 14;

    /**
     * Converts {@code n} consecutive elements of {@code dtype} starting at element {@code elemOffset} of {@code seg}
     * into {@code dst[dstPos..dstPos+n)}. The caller checked the bounds.
     */
    public static void copyToFloat(MemorySegment seg, DType dtype, long elemOffset, int n, float[] dst, int dstPos) {
        long off = elemOffset * dtype.byteSize();
        switch (dtype) {
            case F32 -> MemorySegment.copy(seg, F32, off, dst, dstPos, n);
            case F16, BF16 -> {
                short[] buf = new short[Math.min(n, CHUNK)];
                for (int i = 0; i < n; i += buf.length) {
                    int k = Math.min(buf.length, n - i);
                    MemorySegment.copy(seg, I16, off + 2L * i, buf, 0, k);
                    if (dtype == DType.F16) HalfFloats.halfToFloat(buf, 0, dst, dstPos + i, k);
                    else HalfFloats.bfloat16ToFloat(buf, 0, dst, dstPos + i, k);
                }
            }
            default -> { for (int i = 0; i < n; i++) dst[dstPos + i] = element(seg, dtype, elemOffset + i); }
        }
    }

    /** One element as float (F64 rounded to nearest, integers cast, BOOL 0/1). */
    public static float element(MemorySegment seg, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> seg.get(F32, 4 * index);
            case F16 -> Float.float16ToFloat(seg.get(I16, 2 * index));
            case BF16 -> HalfFloats.bfloat16ToFloat(seg.get(I16, 2 * index));
            case F64 -> (float) seg.get(F64, 8 * index);
            case I64 -> (float) seg.get(I64, 8 * index);
            case I32 -> (float) seg.get(I32, 4 * index);
            case I16 -> seg.get(I16, 2 * index);
            case I8 -> seg.get(ValueLayout.JAVA_BYTE, index);
            case U8 -> seg.get(ValueLayout.JAVA_BYTE, index) & 0xFF;
            case BOOL -> seg.get(ValueLayout.JAVA_BYTE, index) != 0 ? 1f : 0f;
        };
    }

    /** True when {@code stride} is the row-major stride of {@code shape} (dimensions of size 1 may have any stride). */
    public static boolean isContiguous(long[] shape, long[] stride) {
        long expect = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            if (shape[d] != 1 && stride[d] != expect) return false;
            expect *= shape[d];
        }
        return true;
    }

    /**
     * Gathers the strided view (shape, stride in elements, element offset) of {@code seg} into the row-major
     * {@code dst}. The caller checked that every addressed element lies inside the segment.
     */
    public static void gatherToFloat(MemorySegment seg, DType dtype, long elemOffset, long[] shape, long[] stride, float[] dst) {
        int rank = shape.length;
        if (dst.length == 0) return;
        if (isContiguous(shape, stride)) {
            copyToFloat(seg, dtype, elemOffset, dst.length, dst, 0);
            return;
        }
        if (rank == 0) {
            dst[0] = element(seg, dtype, elemOffset);
            return;
        }
        int inner = (int) shape[rank - 1];
        long innerStride = stride[rank - 1];
        long[] idx = new long[rank - 1];
        long base = elemOffset;
        for (int pos = 0; pos < dst.length; pos += inner) {
            if (innerStride == 1) copyToFloat(seg, dtype, base, inner, dst, pos);
            else for (int i = 0; i < inner; i++) dst[pos + i] = element(seg, dtype, base + i * innerStride);
            // advance the outer index like an odometer
            for (int d = rank - 2; d >= 0; d--) {
                idx[d]++;
                base += stride[d];
                if (idx[d] < shape[d]) break;
                base -= idx[d] * stride[d];
                idx[d] = 0;
            }
        }
    }

    /** True when all {@code n} elements from {@code elemOffset} are finite (integer dtypes always are). */
    public static boolean allFinite(MemorySegment seg, DType dtype, long elemOffset, long n) {
        switch (dtype) {
            case F32 -> {
                for (long i = 0; i < n; i++) {
                    int bits = seg.get(I32, 4 * (elemOffset + i));
                    if ((bits & 0x7F80_0000) == 0x7F80_0000) return false;
                }
                return true;
            }
            case F16 -> {
                for (long i = 0; i < n; i++) if ((seg.get(I16, 2 * (elemOffset + i)) & 0x7C00) == 0x7C00) return false;
                return true;
            }
            case BF16 -> {
                for (long i = 0; i < n; i++) if ((seg.get(I16, 2 * (elemOffset + i)) & 0x7F80) == 0x7F80) return false;
                return true;
            }
            case F64 -> {
                for (long i = 0; i < n; i++) if (!Float.isFinite((float) seg.get(F64, 8 * (elemOffset + i)))) return false;
                return true;
            }
            default -> { return true; }
        }
    }
}
