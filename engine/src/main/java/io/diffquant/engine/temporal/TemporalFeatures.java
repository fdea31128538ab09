package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The dense table of temporal features e_i(t, y) of a denoiser (TFMQ-DM, ALGORITHMS.md §6) for a finite set of
 * timestep VALUES and labels: table [feature][t][y] -> float[width]. Computed by running only the Temporal
 * Information Block ({@link TemporalInfoBlock}: the embedders and the modulation / time-projection linears), one
 * call per timestep value with every label in the batch, never the denoiser itself; the layers run through their
 * hooks, so the same call gives the full-precision features of a plain model and the features ê_i(t, y) of a
 * quantized one ({@link #computeQuantized}). The values are bit-identical to what a full forward pass at (t, y)
 * feeds into the blocks. Immutable once built.
 *
 * <p>Cost: |T| calls of |Y| rows through a few small linears (dit-fmnist: 50 x 11 rows, about 7.3k floats per
 * (t, y)). Memory: |T|·|Y|·Σ width floats ({@link #bytes()}).
 */
public final class TemporalFeatures {
    private final TemporalInfoBlock tib;
    private final float[] timesteps;
    private final int[] labels;         // null for unconditional models (one "label" column)
    private final float[][] data;       // [feature] -> T * Y * width
    private final Map<Float, Integer> tIndex = new HashMap<>();

    private TemporalFeatures(TemporalInfoBlock tib, float[] timesteps, int[] labels, float[][] data) {
        this.tib = tib;
        this.timesteps = timesteps;
        this.labels = labels;
        this.data = data;
        for (int i = 0; i < timesteps.length; i++) tIndex.put(key(timesteps[i]), i);
    }

    private static float key(float t) { return t == 0f ? 0f : t; }

    /**
     * The features of every timestep value and label, computed through the model's current hooks (none: full
     * precision).
     * @param timesteps timestep VALUES (e.g. the sampler's respaced timesteps; distinct, finite)
     * @param labels    labels to tabulate (null = every label of the TIB, {@link TemporalInfoBlock#labels()}; must be
     *                  null for unconditional models)
     * @throws IllegalArgumentException for duplicate or non-finite timesteps, labels outside the model's range, or a
     *         table too large for one array per feature
     */
    public static TemporalFeatures compute(DiffusionModel model, float[] timesteps, int[] labels) {
        TemporalInfoBlock tib = TemporalInfoBlock.of(model);
        return compute(model, tib, timesteps, labels);
    }

    /** {@link #compute(DiffusionModel, float[], int[])} with a known TIB. */
    public static TemporalFeatures compute(DiffusionModel model, TemporalInfoBlock tib, float[] timesteps, int[] labels) {
        float[] ts = checkTimesteps(timesteps);
        int[] ys = checkLabels(tib, labels);
        int nt = ts.length, ny = ys == null ? 1 : ys.length;
        float[][] data = new float[tib.features().size()][];
        for (TemporalInfoBlock.Feature f : tib.features()) {
            long n = (long) nt * ny * f.width();
            if (n > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("temporal features: " + nt + " timesteps x " + ny
                    + " labels x " + f.width() + " floats of feature " + f.name() + " do not fit in one table; use fewer timesteps or labels");
            data[f.index()] = new float[(int) n];
        }
        for (int ti = 0; ti < nt; ti++) {
            float[] tv = new float[ny];
            Arrays.fill(tv, ts[ti]);
            Tensor[] out = run(model, tib, tv, ys);
            for (TemporalInfoBlock.Feature f : tib.features()) {
                float[] o = out[f.index()].data();
                System.arraycopy(o, 0, data[f.index()], ti * ny * f.width(), ny * f.width());
            }
        }
        return new TemporalFeatures(tib, ts, ys, data);
    }

    /**
     * A table from given values (e.g. dequantized cached features, or features with added noise): one array per
     * feature, [T][Y][width] row-major, copied.
     * @throws IllegalArgumentException when the arrays do not match the TIB's widths and the axes
     */
    public static TemporalFeatures of(TemporalInfoBlock tib, float[] timesteps, int[] labels, float[][] values) {
        return of(tib, timesteps, labels, values, true);
    }

    /**
     * {@link #of(TemporalInfoBlock, float[], int[], float[][])} that takes ownership of {@code values} instead of
     * copying them (for tables built here, e.g. the dequantized cache: 1.6 GB at DiT-XL/2 size with 2 timesteps).
     */
    static TemporalFeatures wrap(TemporalInfoBlock tib, float[] timesteps, int[] labels, float[][] values) {
        return of(tib, timesteps, labels, values, false);
    }

    private static TemporalFeatures of(TemporalInfoBlock tib, float[] timesteps, int[] labels, float[][] values, boolean copy) {
        float[] ts = checkTimesteps(timesteps);
        int[] ys = checkLabels(tib, labels);
        int ny = ys == null ? 1 : ys.length;
        if (values == null || values.length != tib.features().size()) throw new IllegalArgumentException("temporal features: expected "
                + tib.features().size() + " feature arrays, got " + (values == null ? "null" : values.length));
        float[][] data = new float[values.length][];
        for (TemporalInfoBlock.Feature f : tib.features()) {
            long n = (long) ts.length * ny * f.width();
            float[] v = values[f.index()];
            if (v == null || v.length != n) throw new IllegalArgumentException("temporal features: feature " + f.name() + " needs "
                    + n + " values (" + ts.length + " timesteps x " + ny + " labels x " + f.width() + "), got " + (v == null ? "null" : v.length));
            data[f.index()] = copy ? v.clone() : v;
        }
        return new TemporalFeatures(tib, ts, ys, data);
    }

    /** The features ê of a quantized model (its hooks must be attached). */
    public static TemporalFeatures computeQuantized(QuantizedModel q, float[] timesteps, int[] labels) {
        if (!q.attached()) throw new IllegalStateException("temporal features of a quantized model: the quantization is detached");
        return compute(q.model(), timesteps, labels);
    }

    /**
     * Runs only the TIB on a batch: one output tensor [N, width] per feature (in {@link TemporalInfoBlock#features()}
     * order), exactly as a forward pass of the model computes them, through the layers' hooks and recorded on an
     * active {@link io.diffquant.engine.tensor.Tape} (TIAR optimises the TIB weights with it).
     * @param t timestep value of every row
     * @param y label of every row (null iff unconditional)
     */
    public static Tensor[] run(DiffusionModel model, TemporalInfoBlock tib, float[] t, int[] y) {
        ForwardContext ctx = new ForwardContext(t.clone(), y == null ? null : y.clone());
        Tensor act = trunk(model, ctx);
        Tensor[] out = new Tensor[tib.features().size()];
        for (TemporalInfoBlock.Feature f : tib.features()) out[f.index()] = model.layers().get(f.layer()).forward(act, ctx);
        return out;
    }

    /**
     * The input every temporal feature's layer takes: SiLU of the DiT's conditioning c = t_emb + y_emb, or of the UNet's
     * time embedding, for the rows of {@code ctx} (through the layers' hooks, recorded on an active tape). Each feature
     * is then one Linear layer applied to it, so a feature depends only on this trunk and its own layer (blockwise TIAR).
     */
    public static Tensor trunk(DiffusionModel model, ForwardContext ctx) {
        if (model instanceof DiT d) return TransformerOps.silu(d.conditioning(ctx));
        if (model instanceof UNet2DModel u) return ConvOps.silu(u.timeEmbedding(ctx));
        throw new IllegalArgumentException("temporal features: unsupported architecture " + model.architecture());
    }

    static float[] checkTimesteps(float[] timesteps) {
        if (timesteps == null || timesteps.length == 0) throw new IllegalArgumentException("temporal features: no timesteps given");
        float[] ts = timesteps.clone();
        java.util.Set<Float> seen = new java.util.HashSet<>();
        for (int i = 0; i < ts.length; i++) {
            if (!Float.isFinite(ts[i])) throw new IllegalArgumentException("temporal features: timestep[" + i + "] = " + ts[i] + " is not finite");
            ts[i] = key(ts[i]);
            if (!seen.add(ts[i])) throw new IllegalArgumentException("temporal features: timestep " + QuantizedModel.timestepLabel(ts[i]) + " appears twice");
        }
        return ts;
    }

    static int[] checkLabels(TemporalInfoBlock tib, int[] labels) {
        if (!tib.conditional()) {
            if (labels != null && labels.length > 0) throw new IllegalArgumentException("temporal features: this "
                    + tib.architecture() + " is unconditional; labels must be null");
            return null;
        }
        int[] all = tib.labels();
        if (labels == null) return all;
        if (labels.length == 0) throw new IllegalArgumentException("temporal features: empty label list for a class-conditional model");
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0 || labels[i] >= all.length) throw new IllegalArgumentException("temporal features: label[" + i + "] = "
                    + labels[i] + " is outside [0, " + (all.length - 1) + "]");
            if (!seen.add(labels[i])) throw new IllegalArgumentException("temporal features: label " + labels[i] + " appears twice");
        }
        return labels.clone();
    }

    // ------------------------------------------------------------------ access

    public TemporalInfoBlock tib() { return tib; }

    /** The timestep values, in the order given. */
    public float[] timesteps() { return timesteps.clone(); }

    /** The labels (null for unconditional models, where the y axis has length 1). */
    public int[] labels() { return labels == null ? null : labels.clone(); }

    public int featureCount() { return data.length; }
    public int timestepCount() { return timesteps.length; }
    /** Length of the y axis (1 for unconditional models). */
    public int labelCount() { return labels == null ? 1 : labels.length; }

    /** Index of a timestep value, or -1. */
    public int indexOfT(float t) {
        Integer i = tIndex.get(key(t));
        return i == null ? -1 : i;
    }

    /** Index of a label (0 for unconditional models, whatever the label), or -1. */
    public int indexOfY(int y) {
        if (labels == null) return 0;
        for (int i = 0; i < labels.length; i++) if (labels[i] == y) return i;
        return -1;
    }

    /** A copy of e_i(t, y) by indices. */
    public float[] get(int feature, int ti, int yi) {
        int w = width(feature);
        float[] out = new float[w];
        System.arraycopy(data[feature], offset(feature, ti, yi), out, 0, w);
        return out;
    }

    /** A copy of e_i(t, y) by timestep value and label (label ignored for unconditional models). */
    public float[] at(int feature, float t, int y) {
        int ti = indexOfT(t), yi = indexOfY(y);
        if (ti < 0) throw new IllegalArgumentException("temporal features: timestep " + QuantizedModel.timestepLabel(t) + " is not tabulated");
        if (yi < 0) throw new IllegalArgumentException("temporal features: label " + y + " is not tabulated");
        return get(feature, ti, yi);
    }

    /** Width of a feature. */
    public int width(int feature) { return tib.features().get(feature).width(); }

    /** Offset of e_i(t, y) in {@link #raw(int)}. */
    public int offset(int feature, int ti, int yi) {
        if (ti < 0 || ti >= timesteps.length) throw new IndexOutOfBoundsException("timestep index " + ti + " of " + timesteps.length);
        int ny = labelCount();
        if (yi < 0 || yi >= ny) throw new IndexOutOfBoundsException("label index " + yi + " of " + ny);
        return (ti * ny + yi) * width(feature);
    }

    /** The backing array of a feature, [T][Y][width] row-major (read only: do not modify). */
    public float[] raw(int feature) { return data[feature]; }

    /** A feature as a tensor [T, Y, width] (a copy). */
    public Tensor tensor(int feature) {
        return Tensor.of(data[feature].clone(), timesteps.length, labelCount(), width(feature));
    }

    /** Bytes of the table (float32). */
    public long bytes() {
        long n = 0;
        for (float[] d : data) n += d.length;
        return 4 * n;
    }

    @Override public String toString() {
        return "TemporalFeatures[" + data.length + " features x " + timesteps.length + " timesteps x " + labelCount() + " labels]";
    }
}
