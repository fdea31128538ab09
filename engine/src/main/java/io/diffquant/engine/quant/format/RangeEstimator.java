package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * Per-group range estimation, ALGORITHMS.md §4 (Q-Diffusion / TFMQ-DM quant_layer.py init_quantization_scale,
 * Q-DiT): the ranges [lo, hi] of every group of a {@link GroupView}, turned into parameters by
 * {@link NumberFormat#paramsForRange(float[], float[])} (for FP formats the range sets maxval). The EMA of min/max
 * over calibration batches is the stateful {@link EmaMinMax}. Non-finite input is rejected
 * ({@link QuantChecks.NonFiniteException} with the flat index).
 */
public sealed interface RangeEstimator {

    /** Per-group ranges. */
    record Ranges(float[] lo, float[] hi) {
        public Ranges {
            if (lo.length != hi.length) throw new IllegalArgumentException(lo.length + " lower bounds for " + hi.length + " upper bounds");
        }
        public int groups() { return lo.length; }
    }

    /** Canonical name: {@code minmax}, {@code percentile99.99}, {@code lp2.4x80s0.01}. */
    String id();

    /** Ranges of every group of the view over data (row-major, view.size() elements). */
    Ranges ranges(NumberFormat format, GroupView view, float[] data);

    /** Parameters for the format from {@link #ranges}. */
    default QuantParams estimate(NumberFormat format, GroupView view, float[] data) {
        Ranges r = ranges(format, view, data);
        return format.paramsForRange(r.lo(), r.hi());
    }

    /** Parameters of a tensor for a format, granularity and layout. */
    default QuantParams estimate(NumberFormat format, Granularity g, Layout layout, Tensor x) {
        format.checkGranularity(g);
        return estimate(format, new GroupView(g, layout, x.shape()), x.data());
    }

    /** Min-max: lo = min, hi = max of each group. */
    record MinMax() implements RangeEstimator {
        @Override public String id() { return "minmax"; }
        @Override public Ranges ranges(NumberFormat format, GroupView view, float[] data) { return minMax(view, data); }
    }

    /**
     * Percentile clipping: hi = the {@code percent}-th percentile, lo = the (100 - percent)-th, with linear
     * interpolation between order statistics (torch.quantile / numpy "linear").
     */
    record Percentile(double percent) implements RangeEstimator {
        public Percentile {
            if (!(percent > 50 && percent <= 100)) throw new IllegalArgumentException("percentile must be in (50, 100], got " + percent);
        }
        @Override public String id() { return "percentile" + stripZeros(percent); }

        @Override public Ranges ranges(NumberFormat format, GroupView view, float[] data) {
            checkFinite(data, view.size());
            int n = view.groups();
            float[] lo = new float[n], hi = new float[n];
            double q = percent / 100.0;
            Parallel.forRange(n, 1, (g0, g1) -> {
                for (int g = g0; g < g1; g++) {
                    float[] v = view.gather(data, g);
                    Arrays.sort(v);
                    lo[g] = quantile(v, 1 - q);
                    hi[g] = quantile(v, q);
                }
            });
            return new Ranges(lo, hi);
        }
    }

    /**
     * Lp-norm search (Q-Diffusion / TFMQ-DM "mse" init): starting from the group's [min, max], try the clipped ranges
     * [min, max] · (1 - stepFraction · i) for i = 0 .. steps-1 and keep the one with the lowest mean |x - x̂|^p
     * (strictly lower, so i = 0, the min-max range, wins ties: the search is never worse than min-max).
     * TFMQ/Q-Diffusion: p = 2.4, 80 steps of 1 %; Q-DiT: 100 steps of 0.1 %. Not for NVFP4, whose tensor scale
     * couples the blocks.
     */
    record LpSearch(double p, int steps, double stepFraction) implements RangeEstimator {
        public LpSearch {
            if (!(p > 0)) throw new IllegalArgumentException("Lp search: p must be > 0, got " + p);
            if (steps < 1) throw new IllegalArgumentException("Lp search: steps must be >= 1, got " + steps);
            if (!(stepFraction > 0) || stepFraction * (steps - 1) >= 1) throw new IllegalArgumentException(
                    "Lp search: steps * stepFraction must stay below 1 (the range must not shrink to 0), got " + steps + " x " + stepFraction);
        }
        @Override public String id() { return "lp" + stripZeros(p) + "x" + steps + "s" + stripZeros(stepFraction); }

        @Override public Ranges ranges(NumberFormat format, GroupView view, float[] data) {
            if (format == BlockFormat.NVFP4) throw new IllegalArgumentException(
                    "Lp search is not defined for nvfp4 (its tensor scale couples all blocks); use min-max");
            Ranges mm = minMax(view, data);
            int n = view.groups();
            float[] lo = new float[n], hi = new float[n];
            if (n == 1) {
                // one big group: parallel over candidates
                float[] v = view.gather(data, 0);
                double[] loss = new double[steps];
                Parallel.forRange(steps, 1, (i0, i1) -> {
                    float[] tmp = new float[CHUNK];
                    for (int i = i0; i < i1; i++) loss[i] = candidateLoss(format, v, tmp, mm.lo()[0], mm.hi()[0], i, Double.POSITIVE_INFINITY);
                });
                int best = argmin(loss);
                lo[0] = clip(mm.lo()[0], best);
                hi[0] = clip(mm.hi()[0], best);
            } else {
                Parallel.forRange(n, 1, (g0, g1) -> {
                    float[] tmp = new float[CHUNK];
                    for (int g = g0; g < g1; g++) {
                        float[] v = view.gather(data, g);
                        int best = 0;
                        double bestLoss = Double.POSITIVE_INFINITY;
                        for (int i = 0; i < steps; i++) {
                            double l = candidateLoss(format, v, tmp, mm.lo()[g], mm.hi()[g], i, bestLoss);
                            if (l < bestLoss) { bestLoss = l; best = i; }
                        }
                        lo[g] = clip(mm.lo()[g], best);
                        hi[g] = clip(mm.hi()[g], best);
                    }
                });
            }
            return new Ranges(lo, hi);
        }

        /** The i-th candidate bound: bound · (1 - stepFraction · i). */
        public float clip(float bound, int i) { return (float) (bound * (1.0 - stepFraction * i)); }

        private static final int CHUNK = 256;

        /**
         * Sum of |x - x̂|^p of candidate i, or any value >= bound as soon as the partial sum reaches bound (the
         * candidate cannot win then; the sum only grows, so pruning never changes the chosen candidate).
         */
        private double candidateLoss(NumberFormat f, float[] v, float[] tmp, float lo, float hi, int i, double bound) {
            QuantParams qp = f.paramsForRange(new float[] {clip(lo, i)}, new float[] {clip(hi, i)});
            double s = 0;
            for (int off = 0; off < v.length; off += CHUNK) {
                int len = Math.min(CHUNK, v.length - off);
                f.fakeQuant(v, off, tmp, 0, len, qp, 0);
                s += lpSum(v, off, tmp, len, p);
                if (s >= bound) return s;
            }
            return s;
        }

        private static int argmin(double[] loss) {
            int best = 0;
            for (int i = 1; i < loss.length; i++) if (loss[i] < loss[best]) best = i;
            return best;
        }
    }

    RangeEstimator MIN_MAX = new MinMax();

    static RangeEstimator minMax() { return MIN_MAX; }
    static RangeEstimator percentile(double percent) { return new Percentile(percent); }
    /** TFMQ-DM / Q-Diffusion: p = 2.4, 80 candidates, 1 % steps. */
    static LpSearch lpSearch() { return new LpSearch(2.4, 80, 0.01); }
    /** Q-DiT: p = 2.4, 100 candidates, 0.1 % steps. */
    static LpSearch lpSearchQDiT() { return new LpSearch(2.4, 100, 0.001); }

    /** Mean of |x - y|^p over n elements (p = 2 is squared error). */
    static double lpLoss(float[] x, float[] y, int n, double p) {
        return n == 0 ? 0 : lpSum(x, 0, y, n, p) / n;
    }

    /** Sum of |x[xOff + i] - y[i]|^p for i < n. */
    static double lpSum(float[] x, int xOff, float[] y, int n, double p) {
        double s = 0;
        if (p == 2) {
            for (int i = 0; i < n; i++) { double d = (double) x[xOff + i] - y[i]; s += d * d; }
        } else {
            for (int i = 0; i < n; i++) {
                double d = Math.abs((double) x[xOff + i] - y[i]);
                if (d != 0) s += Math.pow(d, p);
            }
        }
        return s;
    }

    /** Per-group min and max (exact), rejecting non-finite values. */
    static Ranges minMax(GroupView view, float[] data) {
        int n = view.groups();
        float[] lo = new float[n], hi = new float[n];
        Arrays.fill(lo, Float.POSITIVE_INFINITY);
        Arrays.fill(hi, Float.NEGATIVE_INFINITY);
        int rows = view.rows(), cols = view.cols(), spr = view.segmentsPerRow();
        Parallel.RangeBody body = (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                for (int s = 0; s < spr; s++) {
                    int off = r * cols + view.segmentStart(s), len = view.segmentLength(s);
                    float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
                    boolean bad = false;
                    for (int i = off; i < off + len; i++) {
                        float v = data[i];
                        if (v < mn) mn = v;
                        if (v > mx) mx = v;
                        bad |= !(Math.abs(v) <= Float.MAX_VALUE);
                    }
                    if (bad) {
                        int i = QuantChecks.firstNonFinite(data, off, off + len);
                        throw new QuantChecks.NonFiniteException("non-finite value " + data[i] + " at flat index " + i
                                + "; range estimation needs finite values", i, data[i]);
                    }
                    int g = view.group(r, s);
                    if (mn < lo[g]) lo[g] = mn;
                    if (mx > hi[g]) hi[g] = mx;
                }
            }
        };
        if (view.rowsIndependent()) Parallel.forRange(rows, Math.max(1, 16384 / Math.max(1, cols)), body);
        else body.run(0, rows);
        for (int g = 0; g < n; g++) {
            if (lo[g] > hi[g]) { lo[g] = 0; hi[g] = 0; }     // empty group
        }
        return new Ranges(lo, hi);
    }

    private static void checkFinite(float[] data, int n) {
        int i = QuantChecks.firstNonFinite(data, 0, n);
        if (i >= 0) throw new QuantChecks.NonFiniteException("non-finite value " + data[i] + " at flat index " + i
                + "; range estimation needs finite values", i, data[i]);
    }

    /** Linear-interpolation quantile of sorted values. */
    static float quantile(float[] sorted, double q) {
        if (sorted.length == 0) return 0f;
        double pos = q * (sorted.length - 1);
        int i = (int) Math.floor(pos);
        if (i >= sorted.length - 1) return sorted[sorted.length - 1];
        double frac = pos - i;
        return (float) (sorted[i] + frac * ((double) sorted[i + 1] - sorted[i]));
    }

    /** Validates ranges handed to {@link NumberFormat#paramsForRange}. */
    static void checkRanges(String format, float[] lo, float[] hi) {
        if (lo == null || hi == null || lo.length != hi.length || lo.length == 0) throw new IllegalArgumentException(
                format + ": need equally long, non-empty lower and upper bounds");
        for (int g = 0; g < lo.length; g++) {
            if (!Float.isFinite(lo[g]) || !Float.isFinite(hi[g]) || lo[g] > hi[g]) throw new IllegalArgumentException(
                    format + ": range of group " + g + " is [" + lo[g] + ", " + hi[g] + "], expected finite lo <= hi");
        }
    }

    private static String stripZeros(double v) {
        String s = java.math.BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
        return s;
    }
}
