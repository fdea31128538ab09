package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.InputParts;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * TFMQ's finite set calibration (FSC; Huang et al., CVPR 2024 / TPAMI, ALGORITHMS.md §6): one set of input-activation
 * parameters per sampling timestep VALUE for the chosen quant points. Per point, input part and timestep value, the
 * first observed batch initialises the range with an MSE search ({@link Settings#init()}, default: p = 2 over the
 * 80 clipping candidates [min, max]·(1 - 0.01 i) of Q-Diffusion/TFMQ, on at most {@link Settings#initMaxElements()}
 * evenly strided rows of the batch), every later batch at that timestep updates it with the EMA of the batch
 * min/max (momentum 0.95), as the authors' activation quantizers do (MSE init, then running min/max).
 *
 * <p>Observer hooks are attached by the constructor and removed by {@link #close()} / {@link #result()}; the caller
 * runs the model (or only the TIB, {@link TemporalFeatures#run}) with batches of one timestep value each, typically
 * with the weights fake-quantized ({@link QuantizedModel} of {@link QuantPlan#weightsOnly()}).
 */
public final class FscCalibrator implements AutoCloseable {
    /**
     * @param init            range of the first batch at a timestep
     * @param momentum        EMA momentum of the later batches
     * @param initMaxElements elements of the first batch the search looks at (rows are strided to fit)
     */
    public record Settings(RangeEstimator init, double momentum, int initMaxElements) {
        public Settings {
            if (init == null) throw new IllegalArgumentException("FSC: init range estimator is null");
            if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("FSC: EMA momentum must be in [0, 1), got " + momentum);
            if (initMaxElements < 1) throw new IllegalArgumentException("FSC: initMaxElements must be >= 1, got " + initMaxElements);
        }

        /** MSE search (p = 2, 80 candidates of 1 %) on up to 16,384 elements, then EMA 0.95. */
        public static Settings defaults() { return new Settings(new RangeEstimator.LpSearch(2.0, 80, 0.01), 0.95, 1 << 14); }
    }

    private final DiffusionModel model;
    private final Settings settings;
    private final Map<String, Observer> observers = new LinkedHashMap<>();
    private boolean closed;

    /**
     * Attaches observers to the inputs of {@code points}; each must have an enabled, per-timestep input spec in the plan.
     * @throws IllegalArgumentException naming the layer otherwise
     */
    public FscCalibrator(DiffusionModel model, QuantPlan plan, Collection<String> points, Settings settings) {
        this.model = model;
        this.settings = settings;
        for (String name : points) {
            QuantPoint p = plan.point(name);
            if (p == null) throw new IllegalArgumentException("FSC: '" + name + "' is not a quant point of this " + model.architecture());
            TensorSpec in = plan.spec(name).input();
            if (!in.enabled() || in.mode() != CalibrationMode.PER_TIMESTEP) throw new IllegalArgumentException("FSC: layer '" + name
                    + "' needs a per_timestep input spec, got " + in.describe(TensorSpec.Role.INPUT));
            observers.put(name, new Observer(p, in));
        }
        for (Map.Entry<String, Observer> e : observers.entrySet()) model.layers().get(e.getKey()).addHook(e.getValue());
    }

    /** The layers being calibrated. */
    public List<String> points() { return List.copyOf(observers.keySet()); }

    /** Per-timestep input parameters of every point; detaches the observers. */
    public CalibratedParams result() {
        close();
        Map<String, LayerParams> m = new LinkedHashMap<>();
        for (Map.Entry<String, Observer> e : observers.entrySet()) m.put(e.getKey(), new LayerParams(null, e.getValue().params()));
        return new CalibratedParams(m);
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        for (Map.Entry<String, Observer> e : observers.entrySet()) model.layers().get(e.getKey()).removeHook(e.getValue());
    }

    private final class Observer implements LayerHook {
        final QuantPoint point;
        final TensorSpec spec;
        final Map<Float, Range[]> byT = new TreeMap<>();

        Observer(QuantPoint point, TensorSpec spec) {
            this.point = point;
            this.spec = spec;
        }

        @Override public Tensor input(Layer layer, Tensor x, ForwardContext ctx) {
            float t = ctx.uniformT();
            if (Float.isNaN(t)) throw new IllegalArgumentException("FSC: layer '" + point.name() + "': calibration batches must hold one timestep value each");
            if (t == 0f) t = 0f;
            Tensor[] parts = InputParts.split(point, spec.granularity(), x);
            Range[] r = byT.get(t);
            if (r == null) {
                r = new Range[parts.length];
                byT.put(t, r);
            }
            for (int i = 0; i < parts.length; i++) {
                try {
                    if (r[i] == null) r[i] = init(parts[i]);
                    else update(r[i], parts[i]);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("FSC: layer '" + point.name() + "' input at t=" + QuantizedModel.timestepLabel(t) + ": " + e.getMessage(), e);
                }
            }
            return x;
        }

        /** lo = m lo + (1 - m) min(batch), hi likewise, per group. */
        private void update(Range r, Tensor part) {
            GroupView v = new GroupView(spec.granularity(), Layout.ACTIVATION, part.shape());
            RangeEstimator.Ranges b = RangeEstimator.minMax(v, part.data());
            if (b.groups() != r.lo().length) throw new IllegalArgumentException(b.groups() + " groups in a batch of shape "
                    + java.util.Arrays.toString(part.shape()) + ", the first batch had " + r.lo().length);
            double m = settings.momentum();
            for (int g = 0; g < b.groups(); g++) {
                r.lo()[g] = m * r.lo()[g] + (1 - m) * b.lo()[g];
                r.hi()[g] = m * r.hi()[g] + (1 - m) * b.hi()[g];
            }
        }

        private Range init(Tensor part) {
            GroupView v = new GroupView(spec.granularity(), Layout.ACTIVATION, part.shape());
            RangeEstimator est = spec.format() instanceof BlockFormat ? RangeEstimator.minMax() : settings.init();
            Tensor sample = subsample(part, v);
            GroupView sv = new GroupView(spec.granularity(), Layout.ACTIVATION, sample.shape());
            RangeEstimator.Ranges r = est.ranges(spec.format(), sv, sample.data());
            double[] lo = new double[r.groups()], hi = new double[r.groups()];
            for (int g = 0; g < lo.length; g++) { lo[g] = r.lo()[g]; hi[g] = r.hi()[g]; }
            return new Range(lo, hi);
        }

        /** At most initMaxElements elements: evenly strided rows of the [rows, cols] view. */
        private Tensor subsample(Tensor part, GroupView v) {
            int rows = v.rows(), cols = v.cols();
            if ((long) rows * cols <= settings.initMaxElements() || rows <= 1) return part;
            int keep = Math.max(1, settings.initMaxElements() / Math.max(1, cols));
            if (keep >= rows) return part;
            float[] src = part.data(), dst = new float[keep * cols];
            for (int k = 0; k < keep; k++) {
                int r = (int) ((long) k * rows / keep);
                System.arraycopy(src, r * cols, dst, k * cols, cols);
            }
            return Tensor.of(dst, keep, cols);
        }

        InputParams params() {
            if (byT.isEmpty()) throw new IllegalStateException("FSC: no calibration batch reached the input of layer '" + point.name() + "'");
            Map<Float, ActivationParams> m = new TreeMap<>();
            for (Map.Entry<Float, Range[]> e : byT.entrySet()) {
                List<QuantParams> parts = new ArrayList<>();
                for (Range r : e.getValue()) parts.add(r.params(spec));
                m.put(e.getKey(), new ActivationParams(parts));
            }
            return InputParams.perTimestep(m);
        }
    }

    /** The running per-group range of one (point, part, timestep). */
    private record Range(double[] lo, double[] hi) {
        QuantParams params(TensorSpec spec) {
            float[] l = new float[lo.length], h = new float[hi.length];
            for (int g = 0; g < l.length; g++) { l[g] = (float) lo[g]; h[g] = (float) hi[g]; }
            return spec.format().paramsForRange(l, h);
        }
    }
}
