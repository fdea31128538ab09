package io.diffquant.engine.quant;

import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantChecks;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * Fast fake quantization of activations for the common cases of the forward hooks (INT and FP4DiT ExMy formats, per
 * tensor / per token / per group of a row, fixed or min-max dynamic parameters), bit-identical to
 * {@link Quantizer#fakeQuant} (tested against it), with loops the JIT can vectorize. Everything else falls back to
 * {@link Quantizer}.
 *
 * <p>INT: the reference rounds the exact quotient x/Δ half to even. Here q = x/Δ is divided in float: float division is
 * correctly rounded and half-integers below 2^22 are floats, so rounding q can only differ from rounding the exact
 * quotient when q lands exactly on a half-integer; such elements (and NaN) are recomputed with the reference formula.
 * The clamp and the product (q - z)Δ are exact in float (the product of a small integer and a float, rounded once),
 * as in the reference's double arithmetic. FP ExMy: the reference's double-precision steps, with the binade 2^e found by
 * Rump's ufp (two multiplications and a subtraction) instead of the exponent bits and the rounding to the binade's grid
 * by adding and subtracting a power-of-two multiple of it, so the loop vectorizes ({@link #fpSegment}).
 */
public final class ActivationKernels {
    private ActivationKernels() {}

    private static final float MAGIC = 12582912f;       // 1.5 * 2^23: (q + MAGIC) - MAGIC rounds half to even for |q| < 2^22
    private static final int CHUNK = 1 << 14;

    /** Whether {@link #fakeQuant} has a fast path for this format and granularity. */
    public static boolean supports(NumberFormat f, Granularity g) {
        boolean fmt = f instanceof IntFormat || f instanceof FpFormat;
        boolean gran = g instanceof Granularity.PerTensor || g instanceof Granularity.PerToken || g instanceof Granularity.PerGroup;
        return fmt && gran;
    }

    /**
     * Fake-quantizes x into out (same shape, may be x) with fixed parameters (params != null) or min-max parameters
     * estimated from x (dynamic), as {@code Quantizer.withParams(...)} / {@code Quantizer.dynamic(f, g, ACTIVATION)} would.
     * @param name names the tensor in error messages
     */
    public static void fakeQuant(NumberFormat f, Granularity g, QuantParams params, Tensor x, Tensor out, String name) {
        if (!supports(f, g)) {
            Quantizer q = params != null ? Quantizer.withParams(f, g, Layout.ACTIVATION, params) : Quantizer.dynamic(f, g, Layout.ACTIVATION);
            q.named(name).fakeQuant(x, out);
            return;
        }
        int cols = Layout.ACTIVATION.cols(x.shape()), rows = Layout.ACTIVATION.rows(x.shape());
        int seg = g instanceof Granularity.PerGroup pg ? Math.min(pg.size(), Math.max(cols, 1))
                : g instanceof Granularity.PerToken ? cols : cols;
        int spr = cols == 0 ? 0 : (cols + seg - 1) / seg;
        boolean perTensor = g instanceof Granularity.PerTensor;
        QuantParams p = params;
        if (p == null) {
            if (perTensor) {
                float[] r = range(x, name);
                p = f.paramsForRange(new float[] {r[0]}, new float[] {r[1]});
            } else {
                p = rowRanges(f, x.data(), rows, cols, seg, spr, name);
            }
        }
        int groups = perTensor ? 1 : rows * spr;
        if (p.groups() != groups) throw new IllegalArgumentException(QuantChecksBridge.describe(name, x.shape()) + ": " + f.id() + " with granularity "
                + g.id() + " needs " + groups + " parameter groups, the quantizer has " + p.groups());
        float[] src = x.data(), dst = out.data();
        QuantParams pp = p;
        if (perTensor) {
            Parallel.forRange(src.length, CHUNK, (a, b) -> segment(f, src, dst, a, b - a, pp, 0));
        } else {
            Parallel.forRange(rows, Math.max(1, CHUNK / Math.max(1, cols)), (r0, r1) -> {
                for (int r = r0; r < r1; r++) for (int s = 0; s < spr; s++) {
                    int off = r * cols + s * seg;
                    segment(f, src, dst, off, Math.min(seg, cols - s * seg), pp, r * spr + s);
                }
            });
        }
    }

    /** {lo, hi} of the whole tensor (finite values required). */
    private static float[] range(Tensor x, String name) {
        float[] d = x.data();
        float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
        for (float v : d) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
        if (!(Math.abs(mn) <= Float.MAX_VALUE && Math.abs(mx) <= Float.MAX_VALUE)) {
            if (d.length == 0) return new float[] {0, 0};
            nonFinite(name, x.shape(), d, 0, d.length);
        }
        return new float[] {mn + 0f, mx + 0f};
    }

    private static void nonFinite(String name, int[] shape, float[] d, int from, int to) {
        int i = QuantChecks.firstNonFinite(d, from, to);
        throw new QuantChecks.NonFiniteException(QuantChecksBridge.describe(name, shape) + ": non-finite value " + d[i] + " at "
                + QuantChecks.index(shape, i) + "; range estimation needs finite values", i, d[i]);
    }

    /** Per-segment min/max of every row (segments of seg columns), turned into parameters by the format. */
    private static QuantParams rowRanges(NumberFormat f, float[] d, int rows, int cols, int seg, int spr, String name) {
        int n = rows * spr;
        float[] lo = new float[n], hi = new float[n];
        boolean[] bad = new boolean[1];
        Parallel.forRange(rows, Math.max(1, CHUNK / Math.max(1, cols)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) for (int s = 0; s < spr; s++) {
                int off = r * cols + s * seg, end = off + Math.min(seg, cols - s * seg);
                float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
                for (int i = off; i < end; i++) { float v = d[i]; mn = Math.min(mn, v); mx = Math.max(mx, v); }
                if (!(Math.abs(mn) <= Float.MAX_VALUE && Math.abs(mx) <= Float.MAX_VALUE)) bad[0] = true;
                lo[r * spr + s] = mn + 0f;
                hi[r * spr + s] = mx + 0f;
            }
        });
        if (bad[0]) nonFinite(name, new int[] {rows, cols}, d, 0, rows * cols);
        return f.paramsForRange(lo, hi);
    }

    private static void segment(NumberFormat f, float[] src, float[] dst, int off, int len, QuantParams p, int g) {
        if (f instanceof IntFormat i) intSegment(i, src, dst, off, len, p, g);
        else fpSegment((FpFormat) f, src, dst, off, len, p, g);
    }

    static void intSegment(IntFormat f, float[] src, float[] dst, int off, int len, QuantParams p, int g) {
        float d = p.scale(g);
        if (d == 0) {
            f.fakeQuant(src, off, dst, off, len, p, g);
            return;
        }
        if (src == dst) {
            // in place: work on copies (the tie fix-up needs the inputs; equal indices keep the loop vectorizable)
            float[] in = Arrays.copyOfRange(src, off, off + len), out = new float[len];
            intLoop(f, in, out, 0, len, d, p, g);
            System.arraycopy(out, 0, dst, off, len);
            return;
        }
        intLoop(f, src, dst, off, len, d, p, g);
    }

    /**
     * The INT loop over [off, off + len) of src into the same indices of dst (distinct arrays). Source and destination
     * share the index so the JIT can vectorize without alias checks.
     */
    private static void intLoop(IntFormat f, float[] src, float[] dst, int off, int len, float d, QuantParams p, int g) {
        int z = p.zeroPoint(g);
        float lo = f.qmin() - z, hi = f.qmax() - z;
        float tie = Float.POSITIVE_INFINITY;
        int end = off + len;
        for (int i = off; i < end; i++) {
            float q = src[i] / d;
            float r = (q + MAGIC) - MAGIC;
            tie = Math.min(tie, Math.abs(Math.abs(q - r) - 0.5f));
            dst[i] = Math.max(lo, Math.min(hi, r)) * d;
        }
        if (!(tie > 0)) {
            // a half-integer quotient (or NaN) somewhere: redo those elements exactly
            for (int i = off; i < end; i++) {
                float q = src[i] / d;
                float r = (q + MAGIC) - MAGIC;
                if (!(Math.abs(Math.abs(q - r) - 0.5f) > 0)) dst[i] = f.fakeQuant(src[i], p, g);
            }
        }
    }

    /** Rump's ufp: 2^floor(log2 w) for normal w up to 2^970, 0 for 0, NaN for NaN (S. M. Rump, "Ultimately fast accurate summation", 2009). */
    private static final double PHI = 0x1p52 + 1, ONE_MINUS_U = 1 - 0x1p-53;

    /**
     * FP ExMy over [off, off + len): the reference's double-precision steps without a division in the rounding. With
     * w = min(|x|, maxval) · w_max / maxval (as the reference, on the magnitude) and u = max(ufp(w), 2) = 2^e, the
     * rounding rint(w · 2^M / u) · u / 2^M to the binade's grid is (w + c) - c with c = 1.5 · u · 2^(52-M): the sum lies
     * in the binade of c, whose spacing is u / 2^M, and it is rounded half to even because c / (u / 2^M) is even; the
     * subtraction is exact. The value (float) (w_q · maxval / w_max) takes x's sign from Math.signum (every step of
     * the reference is an odd function, so this is its result, -0 included). Every line vectorizes (Math.copySign
     * does not); about 2x faster than rint with the quotient 2^M / u.
     */
    static void fpSegment(FpFormat f, float[] src, float[] dst, int off, int len, QuantParams p, int g) {
        float mvf = p.scale(g);
        if (mvf == 0 || src == dst) {
            f.fakeQuant(src, off, dst, off, len, p, g);
            return;
        }
        // w = |x_c| * wmax / maxval <= wmax <= 2^255 and, for x != 0, >= 2^-149 / 2^128: always a normal double, so
        // max(ufp(w), 2) = 2^max(floor(log2 w), 1) exactly: the reference's binade without reading the exponent bits
        final double mv = mvf, wm = f.wMax(), big = 1.5 * Math.scalb(1.0, 52 - f.mantissaBits());
        int end = off + len;
        if (f.signed()) {
            for (int i = off; i < end; i++) {
                double x = src[i];
                double w = Math.min(Math.abs(x), mv) * wm / mv;
                double q = PHI * w;
                double c = Math.max(Math.abs(q - ONE_MINUS_U * q), 2.0) * big;
                dst[i] = (float) (((w + c) - c) * mv / wm * Math.signum(x));
            }
        } else {
            for (int i = off; i < end; i++) {
                double w = Math.max(Math.min((double) src[i], mv), 0.0) * wm / mv;
                double q = PHI * w;
                double c = Math.max(Math.abs(q - ONE_MINUS_U * q), 2.0) * big;
                dst[i] = (float) (((w + c) - c) * mv / wm);
            }
        }
    }

    /** QuantChecks.describe is package-private in the format package; the same text here. */
    private static final class QuantChecksBridge {
        static String describe(String name, int[] shape) {
            return (name == null || name.isEmpty() ? "tensor" : "tensor '" + name + "'") + " " + Arrays.toString(shape);
        }
    }
}
