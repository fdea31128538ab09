package io.diffquant.engine.quant.recon;

import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantChecks;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * The learnable rounding of one weight tensor (ALGORITHMS.md §5): AdaRound (Nagel et al., "Up or Down? Adaptive
 * Rounding for Post-Training Quantization", ICML 2020; as in BRECQ / Xiuyu-Li/q-diffusion qdiff/adaptive_rounding.py)
 * for integer formats and FP4DiT's scale-aware FP AdaRound (arXiv 2503.15465; cccrrrccc/FP4DiT) for ExMy formats.
 *
 * <p>Both are one element-wise form with a per-element step s, floor b, clamp bounds [lo, hi] and temperature τ:
 * <pre>
 *   h(V)  = clip(σ(V/τ)(ζ - γ) + γ, 0, 1),  ζ = 1.1, γ = -0.1
 *   W̃    = clamp((b + h(V)) s, lo, hi)
 * </pre>
 * INT: s = Δ, b = floor(W/Δ), [lo, hi] = [(qmin - z)Δ, (qmax - z)Δ], τ = 1, so W̃ = Δ(clamp(b + h + z, qmin, qmax) - z);
 * V starts at h⁻¹(frac(W/Δ)). FP: s = the FP step of W's binade ({@link FpFormat#step}), x_c = clip(W, ±maxval),
 * b = floor(x_c/s), r = x_c/s - b, [lo, hi] = [-maxval, maxval] (unsigned: [0, maxval]); scale-aware (the default) sets
 * τ = s and V_0 = s·h⁻¹(r), plain FP AdaRound τ = 1 and V_0 = h⁻¹(r). Elements of a group with scale 0 are fixed at 0.
 * One refinement of the FP4DiT formula: a negative value exactly at the start of a binade (|x_c| = 2^e above the
 * subnormal range, e.g. -maxval for E3M0) takes the step of the binade below, so that rounding up reaches the next grid
 * point instead of skipping the finer binade (for M = 0 the plain formula would jump to 0).
 * Hardening uses h = 1[V >= 0]; the result is encoded to the format's codes (each value lies on the grid: the grid
 * point at or below x_c, or the next one up).
 *
 * <p>{@link #beginSoft()} evaluates h once per iteration and records W̃ and the rounding regulariser
 * λ Σ (1 - |2h - 1|^β) on the active {@link Tape} (their backward rules add into the gradient of {@link #variables()};
 * nothing else receives a gradient).
 */
public final class AdaRoundWeight {
    public static final double ZETA = 1.1, GAMMA = -0.1;

    /** INT: AdaRound; FP: FP AdaRound (scale-aware or not). */
    public enum Kind { INT, FP }

    private static final int CHUNK = 1 << 13;

    private final String name;
    private final Kind kind;
    private final boolean scaleAware;
    private final NumberFormat format;
    private final Granularity granularity;
    private final QuantParams params;
    private final int[] shape;
    private final float[] base, step, lo, hi;
    private final Tensor v;
    private Tensor active;
    private Soft soft;

    private AdaRoundWeight(String name, Kind kind, boolean scaleAware, NumberFormat format, Granularity granularity,
                           QuantParams params, int[] shape, int n) {
        this.name = name;
        this.kind = kind;
        this.scaleAware = scaleAware;
        this.format = format;
        this.granularity = granularity;
        this.params = params;
        this.shape = shape.clone();
        this.base = new float[n];
        this.step = new float[n];
        this.lo = new float[n];
        this.hi = new float[n];
        this.v = Tensor.zeros(shape);
    }

    /** Whether learned rounding supports a format (integer and ExMy formats; not OCP FP8 or block formats). */
    public static boolean supports(NumberFormat f) { return f instanceof IntFormat || f instanceof FpFormat; }

    /**
     * Rounding variables for a weight quantized with fixed parameters, initialised so that h equals the fractional
     * part of the weight on the grid (the soft weight starts at W, up to the clamp).
     *
     * @param name       the tensor's name for messages (e.g. {@code blocks.0.attn.qkv.weight})
     * @param scaleAware FP formats: FP4DiT's scale-aware variant (τ = s); ignored for integers
     * @throws IllegalArgumentException naming the tensor for unsupported formats, wrong group counts or non-finite weights
     */
    public static AdaRoundWeight create(String name, Tensor weight, NumberFormat format, Granularity granularity,
                                        QuantParams params, boolean scaleAware) {
        if (weight == null || format == null || granularity == null || params == null)
            throw new IllegalArgumentException(name + ": weight, format, granularity and parameters are required");
        if (!supports(format)) throw new IllegalArgumentException(name + ": learned rounding supports integer and ExMy formats, not "
                + format.id() + " (that layer keeps round-to-nearest)");
        format.checkGranularity(granularity);
        format.checkParams(params);
        QuantChecks.requireFinite(name, weight);
        GroupView view = new GroupView(granularity, Layout.WEIGHT, weight.shape());
        if (view.groups() != params.groups()) throw new IllegalArgumentException(name + ": " + format.id() + " with granularity "
                + granularity.id() + " on " + Arrays.toString(weight.shape()) + " needs " + view.groups() + " parameter groups, got " + params.groups());
        Kind kind = format instanceof IntFormat ? Kind.INT : Kind.FP;
        AdaRoundWeight a = new AdaRoundWeight(name, kind, kind == Kind.FP && scaleAware, format, granularity, params, weight.shape(), weight.size());
        a.init(weight.data(), view);
        a.active = null;
        return a;
    }

    private void init(float[] w, GroupView view) {
        float[] vd = v.data();
        forEachSegment(view, (off, len, g) -> {
            if (format instanceof IntFormat f) initInt(f, w, vd, off, len, g);
            else initFp((FpFormat) format, w, vd, off, len, g);
        });
    }

    private void initInt(IntFormat f, float[] w, float[] vd, int off, int len, int g) {
        double d = params.scale(g);
        int z = f.kind() == IntFormat.Kind.ASYMMETRIC ? params.zeroPoint(g) : 0;
        float l = (float) ((f.qmin() - z) * d), h = (float) ((f.qmax() - z) * d);
        for (int i = off; i < off + len; i++) {
            lo[i] = l;
            hi[i] = h;
            if (d == 0) continue;                       // base, step and V stay 0: the element is fixed at 0
            double q = w[i] / d, b = Math.floor(q);
            base[i] = (float) b;
            step[i] = (float) d;
            vd[i] = (float) inverse(q - b);
        }
    }

    private void initFp(FpFormat f, float[] w, float[] vd, int off, int len, int g) {
        float mv = params.scale(g);
        float l = f.signed() ? -mv : 0f;
        for (int i = off; i < off + len; i++) {
            lo[i] = l;
            hi[i] = mv;
            if (mv == 0) continue;
            double xc = Math.min(Math.max(w[i], l), mv);
            double s = f.step((float) xc, params, g);          // unsigned formats: negative weights clip to 0 first
            double q = xc / s;
            // A negative value exactly at the start of a binade (|x| = 2^e, e.g. -maxval of E3M0): floor(x/s) + 1 would
            // skip the finer grid of the binade below (down to 0 for M = 0); its upper neighbour is one step of that binade.
            if (q == -(1 << f.mantissaBits()) && s > f.step(0f, params, g)) {
                s /= 2;
                q = xc / s;
            }
            double b = Math.floor(q);
            base[i] = (float) b;
            step[i] = (float) s;
            double u = inverse(q - b);
            vd[i] = (float) (scaleAware ? s * u : u);
        }
    }

    /** h⁻¹(r) = -log((ζ - γ)/(r - γ) - 1): the V (at τ = 1) whose rectified sigmoid equals r in [0, 1). */
    public static double inverse(double r) { return -Math.log((ZETA - GAMMA) / (r - GAMMA) - 1); }

    /** The rectified sigmoid h(u) = clip(σ(u)(ζ - γ) + γ, 0, 1). */
    public static double rectifiedSigmoid(double u) {
        double h = (ZETA - GAMMA) / (1 + Math.exp(-u)) + GAMMA;
        return h < 0 ? 0 : (h > 1 ? 1 : h);
    }

    @FunctionalInterface
    private interface SegmentBody { void run(int off, int len, int group); }

    private static void forEachSegment(GroupView v, SegmentBody body) {
        int rows = v.rows(), cols = v.cols(), spr = v.segmentsPerRow();
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < spr; s++) body.run(r * cols + v.segmentStart(s), v.segmentLength(s), v.group(r, s));
        }
    }

    // ------------------------------------------------------------------ accessors

    public String name() { return name; }
    public Kind kind() { return kind; }
    /** Whether h uses V/s (FP4DiT's scale-aware FP AdaRound). */
    public boolean scaleAware() { return scaleAware; }
    public NumberFormat format() { return format; }
    public Granularity granularity() { return granularity; }
    public QuantParams params() { return params; }
    public int[] shape() { return shape.clone(); }
    public int size() { return base.length; }

    /** The rounding variables V (shaped like the weight): the tensor an optimiser updates. */
    public Tensor variables() { return v; }

    /** τ of element i: its step s when scale-aware, else 1. */
    double tau(int i) { return scaleAware && step[i] != 0 ? step[i] : 1.0; }

    /** The current soft targets h(V/τ) (a fresh array). */
    public float[] softTargets() {
        float[] vd = v.data(), out = new float[base.length];
        Parallel.forRange(out.length, CHUNK, (a, b) -> {
            for (int i = a; i < b; i++) out[i] = (float) rectifiedSigmoid(vd[i] / tau(i));
        });
        return out;
    }

    /** The soft-quantized weight for the current V, not recorded. */
    public Tensor softWeight() {
        float[] h = softTargets();
        Tensor out = Tensor.zeros(shape);
        float[] o = out.data();
        for (int i = 0; i < o.length; i++) o[i] = clampValue(i, h[i]);
        return out;
    }

    private float clampValue(int i, double h) {
        double pre = (base[i] + h) * step[i];
        return (float) (pre < lo[i] ? lo[i] : (pre > hi[i] ? hi[i] : pre));
    }

    // ------------------------------------------------------------------ the recorded ops

    /**
     * Evaluates h for the current V and records W̃ = clamp((b + h) s, lo, hi) on the active tape (if any): the
     * returned tensor is also {@link #active()} until the next call or {@link #useHard()} / {@link #useRtn()}.
     */
    public Tensor beginSoft() {
        int n = base.length;
        float[] vd = v.data();
        float[] h = new float[n], dh = new float[n], gw = new float[n];
        Tensor out = Tensor.zeros(shape);
        float[] o = out.data();
        Parallel.forRange(n, CHUNK, (a, b) -> {
            for (int i = a; i < b; i++) {
                double t = tau(i), sg = 1 / (1 + Math.exp(-vd[i] / t));
                double hh = (ZETA - GAMMA) * sg + GAMMA;
                double hv = hh < 0 ? 0 : (hh > 1 ? 1 : hh);
                double d = hh >= 0 && hh <= 1 ? (ZETA - GAMMA) * sg * (1 - sg) / t : 0;
                h[i] = (float) hv;
                dh[i] = (float) d;
                double pre = (base[i] + hv) * step[i];
                if (pre < lo[i]) { o[i] = lo[i]; gw[i] = 0; }
                else if (pre > hi[i]) { o[i] = hi[i]; gw[i] = 0; }
                else { o[i] = (float) pre; gw[i] = (float) (step[i] * d); }
            }
        });
        soft = new Soft(h, dh);
        Tape tape = Tape.active();
        if (tape != null) tape.record("adaround.weight", out, (gy, g) -> {
            float[] gv = g.of(v);
            if (gv == null) return;
            Parallel.forRange(gv.length, CHUNK, (a, b) -> { for (int i = a; i < b; i++) gv[i] += gy[i] * gw[i]; });
        }, v);
        active = out;
        return out;
    }

    private record Soft(float[] h, float[] dh) {}

    /**
     * The rounding regulariser λ Σ (1 - |2h - 1|^β) of the h evaluated by the last {@link #beginSoft()}, as a scalar
     * recorded on the active tape (sequential double sum: independent of the thread count).
     */
    public Tensor penalty(double lambda, double beta) {
        if (soft == null) throw new IllegalStateException(name + ": penalty() needs beginSoft() first");
        float[] h = soft.h, dh = soft.dh;
        int n = h.length;
        float[] term = new float[n], grad = new float[n];
        Parallel.forRange(n, CHUNK, (a, b) -> {
            for (int i = a; i < b; i++) {
                double x = 2.0 * h[i] - 1, ax = Math.abs(x);
                if (ax >= 1) {                      // h hardened at 0 or 1 (the common case late in the schedule): no pow
                    term[i] = 0;
                    grad[i] = dh[i] == 0 ? 0 : (float) (-lambda * beta * Math.signum(x) * 2 * dh[i]);
                    continue;
                }
                double p = ax == 0 ? (beta == 1 ? 1 : 0) : Math.pow(ax, beta - 1);   // |x|^(β-1)
                term[i] = (float) (1 - p * ax);
                grad[i] = (float) (-lambda * beta * p * Math.signum(x) * 2 * dh[i]);
            }
        });
        double s = 0;
        for (float t : term) s += t;
        Tensor out = Tensor.scalar((float) (lambda * s));
        Tape tape = Tape.active();
        if (tape != null) tape.record("adaround.penalty", out, (gy, g) -> {
            float[] gv = g.of(v);
            if (gv == null) return;
            float k = gy[0];
            Parallel.forRange(gv.length, CHUNK, (a, b) -> { for (int i = a; i < b; i++) gv[i] += k * grad[i]; });
        }, v);
        return out;
    }

    // ------------------------------------------------------------------ hard rounding

    /** Codes of the hardened weight (h = 1[V >= 0]), one unsigned byte per element, row-major. */
    public byte[] codes() {
        float[] vd = v.data();
        byte[] c = new byte[base.length];
        GroupView view = new GroupView(granularity, Layout.WEIGHT, shape);
        forEachSegment(view, (off, len, g) -> {
            for (int i = off; i < off + len; i++) {
                float value = step[i] == 0 ? 0f : clampValue(i, vd[i] >= 0 ? 1 : 0);
                c[i] = (byte) format.encode(value, params, g);
            }
        });
        return c;
    }

    /** The hardened weight (decoded {@link #codes()}: exactly what a quantized model computes with). */
    public Tensor hardWeight() {
        return Quantizer.dequantize(new QuantizedTensor(format, granularity, Layout.WEIGHT, shape, codes(), params));
    }

    /** The learned rounding as weight parameters (the RTN parameters plus the codes). */
    public WeightParams weightParams() { return new WeightParams(params, codes()); }

    /** Round-to-nearest of the original weight with the same parameters. */
    public static Tensor rtn(Tensor weight, NumberFormat format, Granularity g, QuantParams params) {
        return Quantizer.withParams(format, g, Layout.WEIGHT, params).fakeQuant(weight);
    }

    /** The weight hooks compute with (set by {@link #beginSoft()}, {@link #useHard()} or {@link #useFixed}). */
    public Tensor active() {
        if (active == null) throw new IllegalStateException(name + ": no active weight (call beginSoft(), useHard() or useFixed())");
        return active;
    }

    /** Makes the hardened weight active (evaluation). */
    public Tensor useHard() {
        soft = null;
        active = hardWeight();
        return active;
    }

    /** Makes a given weight active (e.g. the round-to-nearest one, for a baseline evaluation). */
    public void useFixed(Tensor w) {
        if (w == null || !Arrays.equals(w.shape(), shape)) throw new IllegalArgumentException(name + ": fixed weight must have shape " + Arrays.toString(shape));
        soft = null;
        active = w;
    }

    @Override public String toString() {
        return "AdaRoundWeight[" + name + ", " + format.id() + "/" + granularity.id() + ", " + kind + (scaleAware ? " scale-aware" : "") + "]";
    }
}
