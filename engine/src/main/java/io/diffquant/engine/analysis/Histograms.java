package io.diffquant.engine.analysis;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Weight and activation histograms per layer (activations per sampling timestep as well) with the representable values
 * of the chosen number format for overlay ({@link NumberFormat#grid}), as the distribution plots of Q-Diffusion and
 * TFMQ-DM show them. Bins are equal-width over the observed [min, max] of the layer (for activations: over all
 * timesteps, so the per-timestep histograms of a layer share their bins).
 */
public final class Histograms {
    private Histograms() {}

    /**
     * One histogram.
     * @param timestep  the timestep value of an activation histogram, NaN for weights and for all timesteps together
     * @param elements  values counted (= sum of counts)
     * @param lo        left edge of the first bin
     * @param hi        right edge of the last bin (bin width (hi - lo) / bins; values equal to hi fall into the last bin)
     * @param grid      representable values of the format with the parameters described by {@code gridNote}; empty when no
     *                  format was given
     * @param nonFinite NaN / infinite values, not counted
     */
    public record Histogram(String layer, String tensor, float timestep, long elements, double lo, double hi, long[] counts,
                            float[] grid, String format, String gridNote, long nonFinite) {
        public int bins() { return counts.length; }
        public double binWidth() { return (hi - lo) / counts.length; }
        /** Left edge of bin b. */
        public double edge(int b) { return lo + (hi - lo) * b / counts.length; }
    }

    /** The layers a list of globs selects among the model's quant points (all when the list is empty). */
    public static List<QuantPoint> select(DiffusionModel model, List<String> globs, boolean weightsOnly) {
        List<QuantPoint> out = new ArrayList<>();
        for (QuantPoint p : QuantPoint.of(model)) {
            if (weightsOnly && !p.hasWeight()) continue;
            boolean hit = globs == null || globs.isEmpty();
            if (!hit) for (String g : globs) if (io.diffquant.engine.quant.spec.QuantPlan.matches(g, p.name())) { hit = true; break; }
            if (hit) out.add(p);
        }
        if (out.isEmpty()) throw new IllegalArgumentException("histograms: no " + (weightsOnly ? "layer with a weight" : "quant point")
                + " matches " + globs);
        return out;
    }

    /**
     * Weight histograms of the selected layers.
     * @param spec the weight spec whose grid is overlaid (its range estimator sets the parameters), or null for none. With
     *             several parameter groups (per channel / group) the grid of the group with the widest range is given.
     */
    public static List<Histogram> weights(DiffusionModel model, List<String> globs, int bins, TensorSpec spec) {
        checkBins(bins);
        List<Histogram> out = new ArrayList<>();
        for (QuantPoint p : select(model, globs, true)) {
            Layer l = model.layers().get(p.name());
            Tensor w = l.param("weight");
            float[] range = range(w.data());
            float[] grid = new float[0];
            String note = "";
            String format = "";
            if (spec != null && spec.enabled()) {
                QuantParams qp = WeightCalibrator.params(l, spec);
                format = spec.describe(TensorSpec.Role.WEIGHT);
                int best = 0;
                float bestSpan = -1;
                for (int g = 0; g < qp.groups(); g++) {
                    float[] gr = spec.format().grid(qp, g);
                    float span = gr.length == 0 ? 0 : gr[gr.length - 1] - gr[0];
                    if (span > bestSpan) { bestSpan = span; best = g; grid = gr; }
                }
                note = qp.groups() == 1 ? "per-tensor parameters" : "group " + best + " of " + qp.groups() + " (widest range)";
            }
            long[] counts = new long[bins];
            long nonFinite = count(w.data(), range[0], range[1], counts);
            out.add(new Histogram(p.name(), "weight", Float.NaN, w.size() - nonFinite, range[0], range[1], counts, grid, format, note, nonFinite));
        }
        return out;
    }

    /**
     * Input-activation histograms of the selected quant points at every sampling step of the session's FP trajectory
     * (one histogram per layer and timestep, then one per layer over all timesteps, timestep NaN). The counts are cached
     * in the session (per layer set and bin count), so changing only the spec re-computes nothing but the grids.
     * @param spec the input spec whose grid is overlaid (min-max range: per timestep for per-timestep and dynamic
     *             specs, over all timesteps for static ones), or null for none
     */
    public static List<Histogram> activations(AnalysisSession session, List<String> globs, int bins, TensorSpec spec) {
        checkBins(bins);
        List<QuantPoint> points = select(session.model(), globs, false);
        List<String> names = points.stream().map(QuantPoint::name).toList();
        Counts counted = session.cached("activation-histograms " + bins + " " + names, () -> count(session, points, bins));
        Map<String, Map<Float, float[]>> ranges = counted.ranges();
        Map<String, float[]> layerRange = counted.layerRange();
        Map<String, Map<Float, long[]>> counts = counted.counts(), bad = counted.bad();
        List<Histogram> out = new ArrayList<>();
        for (QuantPoint p : points) {
            float[] r = layerRange.get(p.name());
            Map<Float, float[]> perT = ranges.get(p.name());
            long[] all = new long[bins];
            long allBad = 0;
            String format = spec != null && spec.enabled() ? spec.describe(TensorSpec.Role.INPUT) : "";
            boolean shared = spec != null && spec.enabled() && spec.mode() == CalibrationMode.STATIC;
            float[] sharedGrid = spec != null && spec.enabled() ? gridFor(spec.format(), r[0], r[1]) : new float[0];
            List<Float> ts = new ArrayList<>(counts.get(p.name()).keySet());
            java.util.Collections.reverse(ts);   // sampling order: descending t
            for (Float t : ts) {
                long[] c = counts.get(p.name()).get(t);
                long nf = bad.get(p.name()).get(t)[0];
                for (int b = 0; b < bins; b++) all[b] += c[b];
                allBad += nf;
                float[] grid = new float[0];
                String note = "";
                if (spec != null && spec.enabled()) {
                    if (shared) {
                        grid = sharedGrid;
                        note = "min-max over all timesteps (static)";
                    } else {
                        float[] tr = perT.get(t);
                        grid = gridFor(spec.format(), tr[0], tr[1]);
                        note = "min-max at this timestep";
                    }
                }
                out.add(new Histogram(p.name(), "input", t, sum(c), r[0], r[1], c.clone(), grid, format, note, nf));
            }
            out.add(new Histogram(p.name(), "input", Float.NaN, sum(all), r[0], r[1], all, sharedGrid, format,
                    spec != null && spec.enabled() ? "min-max over all timesteps" : "", allBad));
        }
        return out;
    }

    /** FP input-activation ranges and counts per layer and timestep (what the grid overlay does not change). */
    record Counts(Map<String, Map<Float, float[]>> ranges, Map<String, float[]> layerRange, Map<String, Map<Float, long[]>> counts,
                  Map<String, Map<Float, long[]>> bad) {}

    /** Two passes over the session's FP step inputs: ranges, then counts over each layer's range. */
    private static Counts count(AnalysisSession session, List<QuantPoint> points, int bins) {
        DiffusionModel model = session.model();
        Map<String, Map<Float, float[]>> ranges = new LinkedHashMap<>();   // layer -> t -> {min, max}
        List<Layer> hooked = new ArrayList<>();
        List<LayerHook> hooks = new ArrayList<>();
        for (QuantPoint p : points) {
            Map<Float, float[]> m = new TreeMap<>();
            ranges.put(p.name(), m);
            LayerHook h = new LayerHook() {
                @Override public Tensor input(Layer layer, Tensor x, ForwardContext ctx) {
                    float[] r = range(x.data());
                    m.merge(ctx.uniformT(), r, (a, b) -> new float[] {Math.min(a[0], b[0]), Math.max(a[1], b[1])});
                    return x;
                }
            };
            Layer l = model.layers().get(p.name());
            l.addHook(h);
            hooked.add(l);
            hooks.add(h);
        }
        try {
            session.outputs();
        } finally {
            for (int i = 0; i < hooked.size(); i++) hooked.get(i).removeHook(hooks.get(i));
        }
        Map<String, float[]> layerRange = new LinkedHashMap<>();
        for (Map.Entry<String, Map<Float, float[]>> e : ranges.entrySet()) {
            float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
            for (float[] r : e.getValue().values()) { lo = Math.min(lo, r[0]); hi = Math.max(hi, r[1]); }
            if (lo > hi) throw new IllegalStateException("histograms: layer '" + e.getKey() + "' saw no input during the forward passes");
            layerRange.put(e.getKey(), fixEmpty(lo, hi));
        }
        Map<String, Map<Float, long[]>> counts = new LinkedHashMap<>();
        Map<String, Map<Float, long[]>> bad = new LinkedHashMap<>();
        hooked.clear();
        hooks.clear();
        for (QuantPoint p : points) {
            Map<Float, long[]> c = new TreeMap<>(), nf = new TreeMap<>();
            counts.put(p.name(), c);
            bad.put(p.name(), nf);
            float[] r = layerRange.get(p.name());
            LayerHook h = new LayerHook() {
                @Override public Tensor input(Layer layer, Tensor x, ForwardContext ctx) {
                    long[] cc = c.computeIfAbsent(ctx.uniformT(), k -> new long[bins]);
                    long n = count(x.data(), r[0], r[1], cc);
                    nf.computeIfAbsent(ctx.uniformT(), k -> new long[1])[0] += n;
                    return x;
                }
            };
            Layer l = model.layers().get(p.name());
            l.addHook(h);
            hooked.add(l);
            hooks.add(h);
        }
        try {
            session.outputs();
        } finally {
            for (int i = 0; i < hooked.size(); i++) hooked.get(i).removeHook(hooks.get(i));
        }
        return new Counts(ranges, layerRange, counts, bad);
    }

    /** The grid of a format for the per-tensor range [lo, hi]. */
    static float[] gridFor(NumberFormat f, float lo, float hi) {
        QuantParams qp = f.paramsForRange(new float[] {lo}, new float[] {hi});
        return f.grid(qp, 0);
    }

    private static void checkBins(int bins) {
        if (bins < 1 || bins > 1 << 20) throw new IllegalArgumentException("histograms: bins must be in [1, 1048576], got " + bins);
    }

    private static long sum(long[] c) {
        long s = 0;
        for (long v : c) s += v;
        return s;
    }

    /** {min, max} of the finite values (an empty range is widened so that bins have a width). */
    static float[] range(float[] d) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : d) {
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (lo == Float.NEGATIVE_INFINITY || hi == Float.POSITIVE_INFINITY || Float.isNaN(lo) || Float.isNaN(hi)) {
            lo = Float.POSITIVE_INFINITY;
            hi = Float.NEGATIVE_INFINITY;
            for (float v : d) if (Float.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        }
        return lo > hi ? new float[] {lo, hi} : fixEmpty(lo, hi);
    }

    private static float[] fixEmpty(float lo, float hi) {
        if (lo < hi) return new float[] {lo, hi};
        float pad = Math.max(Math.abs(lo) * 1e-3f, 1e-6f);
        return new float[] {lo - pad, hi + pad};
    }

    /** Adds the finite values of d to counts over [lo, hi]; returns the number of non-finite values. */
    static long count(float[] d, double lo, double hi, long[] counts) {
        int bins = counts.length;
        double scale = bins / (hi - lo);
        long bad = 0;
        for (float v : d) {
            if (!Float.isFinite(v)) { bad++; continue; }
            int b = (int) ((v - lo) * scale);
            if (b < 0) b = 0;
            else if (b >= bins) b = bins - 1;
            counts[b]++;
        }
        return bad;
    }
}
