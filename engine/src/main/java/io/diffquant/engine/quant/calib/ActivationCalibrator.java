package io.diffquant.engine.quant.calib;

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
import io.diffquant.engine.quant.format.EmaMinMax;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Calibration of static and per-timestep input-activation ranges (Q-Diffusion / TFMQ-DM act quantizer init): observer
 * hooks on every calibrated input collect, per quantizer (and per timestep value for per-timestep inputs, TFMQ's FSC),
 * running min/max, an EMA of per-batch min/max (momentum 0.95 by default), or a bounded reservoir of token rows for
 * percentile and Lp-search ranges. The model runs with its weights fake-quantized (the calibrated weight parameters)
 * and full-precision activations. Dynamic inputs need no calibration.
 *
 * <p>Use: construct (attaches), {@link #observe} each calibration batch, {@link #result()} (detaches).
 */
public final class ActivationCalibrator implements AutoCloseable {
    private final DiffusionModel model;
    private final QuantPlan plan;
    private final QuantizedModel weightsQ;
    private final int reservoir;
    private final long seed;
    private final Map<String, PointObserver> observers = new LinkedHashMap<>();
    private boolean closed;
    private long batches;

    /**
     * @param weights   calibrated weight parameters (weights are fake-quantized while observing); may be empty when
     *                  the plan quantizes no weights
     * @param reservoir elements kept per quantizer for percentile / Lp ranges
     */
    public ActivationCalibrator(DiffusionModel model, QuantPlan plan, CalibratedParams weights, int reservoir, long seed) {
        this.model = model;
        this.plan = plan;
        this.reservoir = reservoir;
        this.seed = seed;
        this.weightsQ = QuantizedModel.attach(model, plan.weightsOnly(), weights);
        for (QuantPoint p : plan.points()) {
            TensorSpec in = plan.spec(p.name()).input();
            if (!in.calibrated()) continue;
            PointObserver o = new PointObserver(p, in);
            observers.put(p.name(), o);
            model.layers().get(p.name()).addHook(o);
        }
    }

    /** Whether the plan has any static / per-timestep input (else no calibration data is needed). */
    public static boolean needed(QuantPlan plan) {
        for (QuantPoint p : plan.points()) if (plan.spec(p.name()).input().calibrated()) return true;
        return false;
    }

    /** Runs one calibration batch through the model. */
    public void observe(CalibBatch b) {
        if (closed) throw new IllegalStateException("activation calibrator is closed");
        model.forward(b.x(), b.timesteps(), b.y());
        batches++;
    }

    public long batches() { return batches; }

    /** Input parameters of every calibrated input; detaches the observers. */
    public CalibratedParams result() {
        close();
        Map<String, LayerParams> m = new LinkedHashMap<>();
        for (Map.Entry<String, PointObserver> e : observers.entrySet()) m.put(e.getKey(), new LayerParams(null, e.getValue().params()));
        return new CalibratedParams(m);
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        for (Map.Entry<String, PointObserver> e : observers.entrySet()) model.layers().get(e.getKey()).removeHook(e.getValue());
        weightsQ.detach();
    }

    // ------------------------------------------------------------------ observers

    private final class PointObserver implements LayerHook {
        final QuantPoint point;
        final TensorSpec spec;
        /** key: timestep value, or NaN for the shared set. */
        final Map<Float, PartObserver[]> byKey = new TreeMap<>();

        PointObserver(QuantPoint point, TensorSpec spec) {
            this.point = point;
            this.spec = spec;
        }

        @Override public Tensor input(Layer layer, Tensor x, ForwardContext ctx) {
            float key = Float.NaN;
            if (spec.mode() == CalibrationMode.PER_TIMESTEP) {
                key = ctx.uniformT();
                if (Float.isNaN(key)) throw new IllegalArgumentException("layer '" + point.name() + "': per-timestep calibration needs batches "
                        + "with one timestep value each");
                if (key == 0f) key = 0f;
            }
            Tensor[] parts = InputParts.split(point, spec.granularity(), x);
            PartObserver[] obs = byKey.get(key);
            if (obs == null) {
                obs = new PartObserver[parts.length];
                for (int i = 0; i < obs.length; i++) obs[i] = newObserver(i, key);
                byKey.put(key, obs);
            }
            for (int i = 0; i < parts.length; i++) obs[i].observe(parts[i]);
            return x;
        }

        private PartObserver newObserver(int part, float key) {
            long s = seed ^ ((long) point.name().hashCode() << 20) ^ (part * 0x9E3779B9L) ^ Float.floatToIntBits(key);
            return switch (spec.range().kind()) {
                case MINMAX -> new MinMaxObserver(point.name(), spec);
                case EMA -> new EmaObserver(spec);
                default -> new ReservoirObserver(point.name(), spec, reservoir, s);
            };
        }

        InputParams params() {
            if (byKey.isEmpty()) throw new IllegalStateException("layer '" + point.name() + "': no calibration batch reached this input");
            if (spec.mode() == CalibrationMode.PER_TIMESTEP) {
                Map<Float, ActivationParams> m = new TreeMap<>();
                for (Map.Entry<Float, PartObserver[]> e : byKey.entrySet()) m.put(e.getKey(), collect(e.getValue()));
                return InputParams.perTimestep(m);
            }
            return InputParams.shared(collect(byKey.get(Float.NaN)));
        }

        private ActivationParams collect(PartObserver[] obs) {
            List<QuantParams> parts = new ArrayList<>();
            for (PartObserver o : obs) parts.add(o.params());
            return new ActivationParams(parts);
        }
    }

    private interface PartObserver {
        void observe(Tensor part);
        QuantParams params();
    }

    private static final class MinMaxObserver implements PartObserver {
        final String name;
        final TensorSpec spec;
        float[] lo, hi;

        MinMaxObserver(String name, TensorSpec spec) { this.name = name; this.spec = spec; }

        @Override public void observe(Tensor part) {
            GroupView v = new GroupView(spec.granularity(), Layout.ACTIVATION, part.shape());
            RangeEstimator.Ranges r;
            try {
                r = RangeEstimator.minMax().ranges(spec.format(), v, part.data());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("layer '" + name + "' input: " + e.getMessage(), e);
            }
            if (lo == null) {
                lo = r.lo().clone();
                hi = r.hi().clone();
                return;
            }
            if (r.groups() != lo.length) throw new IllegalArgumentException("layer '" + name + "' input: " + r.groups()
                    + " groups in a batch of shape " + Arrays.toString(part.shape()) + ", earlier batches had " + lo.length);
            for (int g = 0; g < lo.length; g++) {
                lo[g] = Math.min(lo[g], r.lo()[g]);
                hi[g] = Math.max(hi[g], r.hi()[g]);
            }
        }

        @Override public QuantParams params() { return spec.format().paramsForRange(lo, hi); }
    }

    private static final class EmaObserver implements PartObserver {
        final TensorSpec spec;
        final EmaMinMax ema;

        EmaObserver(TensorSpec spec) {
            this.spec = spec;
            this.ema = new EmaMinMax(spec.granularity(), Layout.ACTIVATION, spec.range().momentum());
        }

        @Override public void observe(Tensor part) { ema.observe(part); }
        @Override public QuantParams params() { return ema.params(spec.format()); }
    }

    /** Algorithm R over token rows (all columns of a row are kept together so channel/head groups stay intact). */
    private static final class ReservoirObserver implements PartObserver {
        final String name;
        final TensorSpec spec;
        final int capacityElements;
        final SplittableRandom rnd;
        float[] data;
        int cols = -1, capRows, kept;
        long seen;

        ReservoirObserver(String name, TensorSpec spec, int capacityElements, long seed) {
            this.name = name;
            this.spec = spec;
            this.capacityElements = capacityElements;
            this.rnd = new SplittableRandom(seed);
        }

        @Override public void observe(Tensor part) {
            int c = Layout.ACTIVATION.cols(part.shape()), rows = Layout.ACTIVATION.rows(part.shape());
            if (cols < 0) {
                cols = c;
                capRows = Math.max(1, capacityElements / Math.max(1, c));
                data = new float[capRows * c];
            } else if (c != cols) {
                throw new IllegalArgumentException("layer '" + name + "' input: " + c + " channels, earlier batches had " + cols);
            }
            float[] src = part.data();
            for (int r = 0; r < rows; r++, seen++) {
                int slot;
                if (kept < capRows) slot = kept++;
                else {
                    long j = rnd.nextLong(seen + 1);
                    if (j >= capRows) continue;
                    slot = (int) j;
                }
                System.arraycopy(src, r * c, data, slot * c, c);
            }
        }

        @Override public QuantParams params() {
            Tensor t = Tensor.of(Arrays.copyOf(data, kept * cols), kept, cols);
            try {
                return spec.range().estimator().estimate(spec.format(), spec.granularity(), Layout.ACTIVATION, t);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("layer '" + name + "' input: " + e.getMessage(), e);
            }
        }
    }

    /** The range kinds that need a reservoir. */
    static boolean needsReservoir(RangeSpec r) { return !r.streaming(); }
}
