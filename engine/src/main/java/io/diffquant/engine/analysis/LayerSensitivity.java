package io.diffquant.engine.analysis;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Per-layer sensitivity (the one-layer-at-a-time ablation of PTQ papers such as Q-Diffusion and PTQ4DiT): every layer
 * is quantized alone with a given spec (a {@link QuantPlan} whose only enabled point is that layer; weights round to
 * nearest with the spec's range, static / per-timestep inputs calibrated on the FP trajectory's step inputs) and the
 * model output at the inputs x_t of every sampling step of the session's FP trajectory is compared with the cached FP
 * output: relative error ||out_q - out_fp||² / ||out_fp||² per layer and timestep (the heatmap) and its mean over
 * timesteps (the ranking).
 */
public final class LayerSensitivity {
    private LayerSensitivity() {}

    /** One layer quantized with one spec. */
    public record LayerProbe(String layer, PointSpec spec) {
        public LayerProbe {
            if (layer == null || spec == null) throw new IllegalArgumentException("layer probe needs a layer and a spec");
            if (!spec.enabled()) throw new IllegalArgumentException("layer probe '" + layer + "': the spec quantizes nothing");
        }

        /** e.g. "w int4-asym/channel/minmax, a off". */
        public String describe() {
            return "w " + spec.weight().describe(TensorSpec.Role.WEIGHT) + ", a " + spec.input().describe(TensorSpec.Role.INPUT);
        }
    }

    /**
     * @param relativeError [layer][timestep index]: ||out_q - out_fp||² / ||out_fp||² at that step's inputs
     * @param meanError     mean of each row over timesteps
     */
    public record Result(List<LayerProbe> probes, int[] timesteps, double[][] relativeError, double[] meanError, double seconds) {
        public Result {
            probes = List.copyOf(probes);
            timesteps = timesteps.clone();
        }

        @Override public int[] timesteps() { return timesteps.clone(); }

        public List<String> layers() { return probes.stream().map(LayerProbe::layer).toList(); }

        /** Layer indices sorted by mean error, most sensitive first. */
        public int[] ranking() {
            Integer[] idx = new Integer[meanError.length];
            for (int i = 0; i < idx.length; i++) idx[i] = i;
            java.util.Arrays.sort(idx, (a, b) -> Double.compare(meanError[b], meanError[a]));
            int[] r = new int[idx.length];
            for (int i = 0; i < r.length; i++) r[i] = idx[i];
            return r;
        }

        public double meanError(String layer) {
            for (int i = 0; i < probes.size(); i++) if (probes.get(i).layer().equals(layer)) return meanError[i];
            throw new IllegalArgumentException("layer '" + layer + "' was not probed");
        }
    }

    /**
     * One probe per quant point of the model with {@code spec}: every Linear/Conv2d layer when the spec quantizes weights,
     * every point (attention probes included) when it quantizes inputs only.
     */
    public static List<LayerProbe> allLayers(DiffusionModel model, PointSpec spec) {
        List<LayerProbe> out = new ArrayList<>();
        for (QuantPoint p : QuantPoint.of(model)) {
            if (spec.weight().enabled() && !p.hasWeight()) continue;
            out.add(new LayerProbe(p.name(), spec));
        }
        return out;
    }

    public static Result evaluate(AnalysisSession session, List<LayerProbe> probes) {
        long t0 = System.nanoTime();
        DiffusionModel model = session.model();
        List<Tensor> ref = session.fpOutputs();
        List<CalibBatch> inputs = session.stepInputs();
        double[][] err = new double[probes.size()][ref.size()];
        double[] mean = new double[probes.size()];
        for (int i = 0; i < probes.size(); i++) {
            LayerProbe p = probes.get(i);
            QuantizedModel q = attachOne(model, p, inputs);
            List<Tensor> out;
            try {
                out = session.outputs();
            } finally {
                q.detach();
            }
            double s = 0;
            for (int k = 0; k < ref.size(); k++) {
                err[i][k] = relativeError(ref.get(k), out.get(k));
                s += err[i][k];
            }
            mean[i] = s / ref.size();
        }
        return new Result(probes, session.timesteps(), err, mean, (System.nanoTime() - t0) / 1e9);
    }

    /** Quantizes exactly one layer of the model (weights round to nearest; inputs calibrated on {@code calib}). */
    static QuantizedModel attachOne(DiffusionModel model, LayerProbe p, List<CalibBatch> calib) {
        if (!model.layers().contains(p.layer())) throw new IllegalArgumentException("layer sensitivity: no layer '" + p.layer() + "' in this "
                + model.architecture());
        QuantPlan plan;
        try {
            plan = QuantPlan.resolve(model, PointSpec.FP, List.of(new LayerOverride(p.layer(), SpecPatch.of(p.spec().weight()),
                    SpecPatch.of(p.spec().input()), "layer sensitivity '" + p.layer() + "'")));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("layer sensitivity: " + e.getMessage(), e);
        }
        long enabled = plan.specs().values().stream().filter(PointSpec::enabled).count();
        if (enabled != 1) throw new IllegalArgumentException("layer sensitivity: '" + p.layer() + "' selects " + enabled
                + " quant points, expected exactly one");
        CalibratedParams params = WeightCalibrator.calibrate(model, plan);
        if (ActivationCalibrator.needed(plan)) {
            ActivationCalibrator ac = new ActivationCalibrator(model, plan, params, 1 << 16, 0);
            try {
                for (CalibBatch b : calib) ac.observe(b);
            } finally {
                ac.close();
            }
            params = params.merge(ac.result());
        }
        return QuantizedModel.attach(model, plan, params);
    }

    /** ||b - a||² / ||a||² (0 when both are zero). */
    static double relativeError(Tensor a, Tensor b) {
        float[] ad = a.data(), bd = b.data();
        double dd = 0, aa = 0;
        for (int j = 0; j < ad.length; j++) {
            double d = (double) bd[j] - ad[j];
            dd += d * d;
            aa += (double) ad[j] * ad[j];
        }
        return aa > 0 ? dd / aa : (dd == 0 ? 0 : Double.POSITIVE_INFINITY);
    }
}
