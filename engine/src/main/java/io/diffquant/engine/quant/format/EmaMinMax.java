package io.diffquant.engine.quant.format;

import io.diffquant.engine.tensor.Tensor;

/**
 * Exponential moving average of per-group min/max over calibration batches (Q-Diffusion / TFMQ-DM activation
 * quantizers' running_stat, ALGORITHMS.md §4): the first batch sets the range, every later batch updates
 * lo = m · lo + (1 - m) · min(batch) and hi = m · hi + (1 - m) · max(batch), momentum m = 0.95 by default.
 * Kept in double precision; the number of groups must stay the same across batches.
 */
public final class EmaMinMax {
    private final Granularity granularity;
    private final Layout layout;
    private final double momentum;
    private double[] lo, hi;
    private int batches;

    public EmaMinMax(Granularity granularity, Layout layout) { this(granularity, layout, 0.95); }

    public EmaMinMax(Granularity granularity, Layout layout, double momentum) {
        if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("EMA momentum must be in [0, 1), got " + momentum);
        if (granularity == null || layout == null) throw new IllegalArgumentException("granularity and layout are required");
        this.granularity = granularity;
        this.layout = layout;
        this.momentum = momentum;
    }

    public double momentum() { return momentum; }
    public int batches() { return batches; }

    /** Folds one batch into the running range; returns this. */
    public EmaMinMax observe(Tensor x) {
        GroupView v = new GroupView(granularity, layout, x.shape());
        RangeEstimator.Ranges r = RangeEstimator.minMax(v, x.data());
        int n = r.groups();
        if (lo == null) {
            lo = new double[n];
            hi = new double[n];
            for (int g = 0; g < n; g++) { lo[g] = r.lo()[g]; hi[g] = r.hi()[g]; }
        } else {
            if (n != lo.length) throw new IllegalArgumentException("EMA of " + granularity.id() + " ranges: batch " + (batches + 1)
                    + " of shape " + java.util.Arrays.toString(x.shape()) + " has " + n + " groups, earlier batches had " + lo.length);
            for (int g = 0; g < n; g++) {
                lo[g] = momentum * lo[g] + (1 - momentum) * r.lo()[g];
                hi[g] = momentum * hi[g] + (1 - momentum) * r.hi()[g];
            }
        }
        batches++;
        return this;
    }

    /** The current ranges (as floats). */
    public RangeEstimator.Ranges ranges() {
        if (lo == null) throw new IllegalStateException("EMA of ranges: no batch observed yet");
        float[] l = new float[lo.length], h = new float[hi.length];
        for (int g = 0; g < l.length; g++) { l[g] = (float) lo[g]; h[g] = (float) hi[g]; }
        return new RangeEstimator.Ranges(l, h);
    }

    /** Parameters of the current ranges for a format. */
    public QuantParams params(NumberFormat format) {
        format.checkGranularity(granularity);
        RangeEstimator.Ranges r = ranges();
        return format.paramsForRange(r.lo(), r.hi());
    }
}
