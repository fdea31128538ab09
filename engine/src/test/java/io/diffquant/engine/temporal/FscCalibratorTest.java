package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** FSC: one parameter set per timestep value, MSE init then EMA, lower error than shared parameters when ranges move with t. */
class FscCalibratorTest {

    /** A model whose only layer sees x scaled by (1 + t / 100): the activation range grows 11x from t = 0 to t = 1000. */
    static final class TimeScaled extends DiffusionModel {
        final Linear lin;

        TimeScaled() {
            lin = layers.add(new Linear("lin", 8, 2, false));
            lin.setParam("weight", QuantTestSupport.rand(new Random(2), 0.3, 2, 8));
        }

        @Override public String architecture() { return "TimeScaled"; }
        @Override public int inChannels() { return 8; }
        @Override public int outChannels() { return 2; }
        @Override public int sampleSize() { return 1; }
        @Override public int numClasses() { return 0; }
        @Override public boolean learnSigma() { return false; }

        static Tensor scaled(Tensor x, float[] t) {
            int n = x.dim(0), c = x.size() / n;
            Tensor h = Tensor.zeros(n, c);
            for (int i = 0; i < n; i++) for (int j = 0; j < c; j++) h.data()[i * c + j] = x.data()[i * c + j] * (1 + t[i] / 100f);
            return h;
        }

        @Override public Tensor forward(Tensor x, float[] t, int[] y) {
            return lin.forward(scaled(x, t), new ForwardContext(t.clone(), null));
        }
    }

    static final float[] TS = {0, 100, 500, 999};

    @Test void perTimestepParametersFollowTheRangeAndBeatSharedOnes() {
        TimeScaled m = new TimeScaled();
        IntFormat a4 = IntFormat.asymmetric(4);
        PointSpec spec = new PointSpec(TensorSpec.OFF, TensorSpec.input(a4, Granularity.TENSOR, RangeSpec.EMA, CalibrationMode.PER_TIMESTEP));
        QuantPlan plan = QuantPlan.resolve(m, spec, List.of());
        FscCalibrator.Settings st = new FscCalibrator.Settings(new RangeEstimator.LpSearch(2, 80, 0.01), 0.9, 1 << 14);
        FscCalibrator cal = new FscCalibrator(m, plan, List.of("lin"), st);
        Random r = new Random(5);
        List<Tensor> batches = new ArrayList<>();
        for (float t : TS) {
            for (int b = 0; b < 3; b++) {
                Tensor x = QuantTestSupport.rand(r, 1, 16, 8, 1, 1);
                float[] tv = new float[16];
                Arrays.fill(tv, t);
                m.forward(x, tv, null);
                batches.add(TimeScaled.scaled(x, tv));
            }
        }
        CalibratedParams p = cal.result();
        assertTrue(m.lin.hooks().isEmpty(), "observers detached");
        InputParams in = p.input("lin");
        assertTrue(in.isPerTimestep());
        assertEquals(TS.length, in.perTimestep().size());
        // independent reference of (t, batches): MSE search on the first batch, then EMA of min/max
        for (int k = 0; k < TS.length; k++) {
            Tensor first = batches.get(3 * k);
            RangeEstimator.Ranges init = new RangeEstimator.LpSearch(2, 80, 0.01).ranges(a4,
                    new io.diffquant.engine.quant.format.GroupView(Granularity.TENSOR, Layout.ACTIVATION, first.shape()), first.data());
            double lo = init.lo()[0], hi = init.hi()[0];
            for (int b = 1; b < 3; b++) {
                float[] d = batches.get(3 * k + b).data();
                float mn = Float.MAX_VALUE, mx = -Float.MAX_VALUE;
                for (float v : d) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
                lo = 0.9 * lo + 0.1 * mn;
                hi = 0.9 * hi + 0.1 * mx;
            }
            QuantParams want = a4.paramsForRange(new float[] {(float) lo}, new float[] {(float) hi});
            assertEquals(want, in.at(TS[k]).part(0), "t = " + TS[k]);
        }
        assertNotEquals(in.at(0).part(0), in.at(999).part(0), "parameters differ per timestep");
        assertTrue(in.at(999).part(0).scale(0) > 5 * in.at(0).part(0).scale(0), "the step follows the 11x range");

        // shared parameters: one min-max range over every batch (what a static calibration would use)
        float mn = Float.MAX_VALUE, mx = -Float.MAX_VALUE;
        for (Tensor b : batches) for (float v : b.data()) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
        QuantParams shared = a4.paramsForRange(new float[] {mn}, new float[] {mx});
        double errShared = 0, errFsc = 0;
        for (int k = 0; k < TS.length; k++) for (int b = 0; b < 3; b++) {
            Tensor x = batches.get(3 * k + b);
            errShared += mse(x, Quantizer.withParams(a4, Granularity.TENSOR, Layout.ACTIVATION, shared).fakeQuant(x));
            errFsc += mse(x, Quantizer.withParams(a4, Granularity.TENSOR, Layout.ACTIVATION, in.at(TS[k]).part(0)).fakeQuant(x));
        }
        assertTrue(errFsc * 2 < errShared, "FSC error " + errFsc + " vs shared " + errShared);
    }

    static double mse(Tensor a, Tensor b) {
        double s = 0;
        for (int i = 0; i < a.size(); i++) { double d = (double) a.data()[i] - b.data()[i]; s += d * d; }
        return s / a.size();
    }

    @Test void tibActivationsGetOneSetPerSamplingTimestep() {
        DiT m = TemporalTestSupport.dit(TemporalTestSupport.DIT, 41);
        TemporalInfoBlock tib = TemporalInfoBlock.of(m);
        PointSpec d = new PointSpec(TensorSpec.OFF, TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC));
        List<LayerOverride> ov = new ArrayList<>();
        for (String l : tib.linearLayers(m)) ov.add(new LayerOverride(l, SpecPatch.KEEP, new SpecPatch(null, null, null, RangeSpec.EMA, CalibrationMode.PER_TIMESTEP)));
        QuantPlan plan = QuantPlan.resolve(m, d, ov);
        FscCalibrator cal = new FscCalibrator(m, plan, tib.linearLayers(m), FscCalibrator.Settings.defaults());
        int[] labels = tib.labels();
        for (float t : TS) {
            float[] tv = new float[labels.length];
            Arrays.fill(tv, t);
            TemporalFeatures.run(m, tib, tv, labels);
        }
        CalibratedParams p = cal.result();
        for (String l : tib.linearLayers(m)) {
            assertEquals(TS.length, p.input(l).perTimestep().size(), l);
        }
        assertNotEquals(p.input("blocks.0.adaLN_modulation.1").at(0), p.input("blocks.0.adaLN_modulation.1").at(999),
                "the modulation input SiLU(c) has another range at t = 0 than at t = 999");
        // static inputs are refused, mixed-timestep batches too
        assertThrows(IllegalArgumentException.class, () -> new FscCalibrator(m, QuantPlan.resolve(m, d, List.of()), List.of("blocks.0.attn.qkv"),
                FscCalibrator.Settings.defaults()));
        FscCalibrator c2 = new FscCalibrator(m, plan, List.of("t_embedder.mlp.0"), FscCalibrator.Settings.defaults());
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TemporalFeatures.run(m, tib, new float[] {1, 2}, new int[] {0, 0}));
            assertTrue(e.getMessage().contains("one timestep value"), e.getMessage());
        } finally {
            c2.close();
        }
    }
}
