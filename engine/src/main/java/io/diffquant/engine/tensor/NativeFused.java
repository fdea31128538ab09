package io.diffquant.engine.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Fused inference kernels whose intermediates live in a per-thread native buffer instead of Java arrays, so that
 * oneDNN primitives ({@link DnnlPrimitives}) can work on them in place and GEMMs ({@link DnnlBlas#sgemmSegments})
 * read and write them directly: the DiT MLP {@code fc2(gelu_tanh(fc1(x)))} (timm Mlp as used by
 * facebookresearch/DiT models.py) and timm's attention core softmax(q k^T scale) v. Every entry returns null when the native path is not available (JFR recorder,
 * no FFM, zero-copy off): callers then run the unfused ops. Not recorded on a {@link Tape}: callers use it only
 * while none is active.
 */
final class NativeFused {
    private NativeFused() {}

    /** Buffers above this size are not kept for the next call (they are freed by the GC). */
    private static final long KEEP_BYTES = 256L << 20;
    private static final ThreadLocal<MemorySegment> SCRATCH = new ThreadLocal<>();

    /** True when the native path can run now: oneDNN is the active GEMM backend and FFM calls into it are allowed. */
    static boolean available() {
        return Blas.get() instanceof DnnlBlas && DnnlBlas.segmentsAvailable() && DnnlPrimitives.available();
    }

    /** A native buffer of at least n floats, owned by this thread until its next call here (shared access). */
    private static MemorySegment scratch(long n) {
        long bytes = Math.max(64, n * Float.BYTES);
        MemorySegment s = SCRATCH.get();
        if (s != null && s.byteSize() >= bytes) return s.asSlice(0, bytes);
        // grow geometrically so that batch-size changes do not reallocate every call
        long size = s == null ? bytes : Math.max(bytes, Math.min(2 * s.byteSize(), bytes + (bytes >> 1)));
        MemorySegment fresh = Arena.ofAuto().allocate(size, 64);
        if (size <= KEEP_BYTES) SCRATCH.set(fresh);
        else SCRATCH.remove();
        return fresh.asSlice(0, bytes);
    }

    /**
     * y = (gelu_tanh(x w1^T + b1)) w2^T + b2 for x [m, d] (row-major), w1 [h, d], w2 [o, h], biases nullable; the
     * hidden [m, h] activation stays native. y is written into yd ([m, o], zero on entry). False: not available (yd
     * may be partly written).
     */
    static boolean mlpGeluTanh(float[] x, int m, int d, float[] w1, float[] b1, int h, float[] w2, float[] b2, int o,
                               float[] yd) {
        if (!available()) return false;
        MemorySegment hid = scratch((long) m * h);
        if (b1 != null) fillRowsNative(hid, b1, m, h);
        if (!DnnlBlas.sgemmSegments(false, true, m, h, d, 1f, MemorySegment.ofArray(x), d, MemorySegment.ofArray(w1), d,
                b1 != null ? 1f : 0f, hid, h)) return false;
        if (!DnnlPrimitives.geluTanh(hid, (long) m * h)) return false;
        if (b2 != null) Ops.fillRows(yd, b2, o);
        return DnnlBlas.sgemmSegments(false, true, m, o, h, 1f, hid, h, MemorySegment.ofArray(w2), h,
                b2 != null ? 1f : 0f, MemorySegment.ofArray(yd), o);
    }

    /**
     * One attention head: out[ob + r*ldo + e] = sum_j softmax_j(scale q_r . k_j) v_j[e] for r < t, e < d, with q, k, v
     * rows of qkv at qOff, kOff, vOff (row stride ldq). The t x t probabilities stay native (oneDNN softmax, exact
     * row max). False: not available (out may be partly written).
     */
    static boolean attentionHead(float[] qkv, int qOff, int kOff, int vOff, int ldq, int t, int d, float scale,
                                 float[] out, int ob, int ldo) {
        MemorySegment s = scratch((long) t * t), q = MemorySegment.ofArray(qkv);
        return DnnlBlas.sgemmSegments(false, true, t, t, d, scale, q.asSlice((long) qOff * Float.BYTES), ldq,
                        q.asSlice((long) kOff * Float.BYTES), ldq, 0f, s, t)
                && DnnlPrimitives.softmaxRows(s, t, t)
                && DnnlBlas.sgemmSegments(false, false, t, d, t, 1f, s, t, q.asSlice((long) vOff * Float.BYTES), ldq, 0f,
                        MemorySegment.ofArray(out).asSlice((long) ob * Float.BYTES), ldo);
    }

    /** buf[r, :] = v for rows r < rows (row length n = v's length). */
    private static void fillRowsNative(MemorySegment buf, float[] v, int rows, int n) {
        MemorySegment src = MemorySegment.ofArray(v);
        long rowBytes = (long) n * Float.BYTES;
        Parallel.forRange(rows, Math.max(1, (1 << 14) / Math.max(1, n)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) MemorySegment.copy(src, 0, buf, r * rowBytes, rowBytes);
        });
    }
}
