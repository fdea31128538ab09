package io.diffquant.engine.quant;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Random;

import static io.diffquant.engine.quant.QuantTestSupport.Recorder;
import static io.diffquant.engine.quant.QuantTestSupport.rand;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Fake-quant hooks: exact detach, cached weights, static / dynamic / per-timestep inputs, the concat split, bad weights. */
class QuantizedModelTest {
    static final IntFormat INT4 = IntFormat.asymmetric(4), INT8 = IntFormat.asymmetric(8);

    static PointSpec w4a8Static() {
        return new PointSpec(TensorSpec.weight(INT4, Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC));
    }

    static Tensor x(DiffusionModel m, int n, long seed) {
        return rand(new Random(seed), 1, n, m.inChannels(), m.sampleSize(), m.sampleSize());
    }

    /** Static W4A8 on dit-small with activation ranges from two random batches at t = 500. */
    static QuantizedModel attachW4A8(DiT m) {
        QuantPlan plan = QuantPlan.resolve(m, w4a8Static(), List.of());
        CalibratedParams w = WeightCalibrator.calibrate(m, plan);
        try (ActivationCalibrator ac = new ActivationCalibrator(m, plan, w, 1 << 12, 0)) {
            for (int i = 0; i < 2; i++) ac.observe(new CalibBatch(500f, x(m, 2, 10 + i), new int[] {1, 2}, new int[] {0, 1}));
            return QuantizedModel.attach(m, plan, w.merge(ac.result()));
        }
    }

    static boolean bitsEqual(Tensor a, Tensor b) {
        if (!java.util.Arrays.equals(a.shape(), b.shape())) return false;
        for (int i = 0; i < a.size(); i++) if (Float.floatToRawIntBits(a.data()[i]) != Float.floatToRawIntBits(b.data()[i])) return false;
        return true;
    }

    @Test void detachRestoresFullPrecisionBitExactly() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        Map<String, Tensor> before = new java.util.LinkedHashMap<>();
        m.stateDict().forEach((k, v) -> before.put(k, v.copy()));
        Tensor in = x(m, 2, 1);
        float[] t = {500, 500};
        int[] y = {3, 10};
        Tensor fp = m.forward(in, t, y);
        QuantizedModel q = attachW4A8(m);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> QuantizedModel.attach(m, q.plan(), q.params()));
        assertTrue(twice.getMessage().contains("already fake-quantized"), twice.getMessage());
        Tensor quant = m.forward(in, t, y);
        double diff = 0;
        for (int i = 0; i < fp.size(); i++) diff = Math.max(diff, Math.abs(fp.data()[i] - quant.data()[i]));
        assertTrue(diff > 1e-4, "W4A8 must change the output, max diff " + diff);
        q.detach();
        for (Layer l : m.layers().all()) assertTrue(l.hooks().isEmpty(), l.name() + " still has hooks");
        assertTrue(bitsEqual(fp, m.forward(in, t, y)), "after detach the output must equal the FP output bit for bit");
        m.stateDict().forEach((k, v) -> assertTrue(bitsEqual(before.get(k), v), "tensor " + k + " was modified"));
        q.detach();   // idempotent
    }

    @Test void weightsAreFakeQuantizedOnceAndCached() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.weight(INT4, Granularity.group(16), RangeSpec.MINMAX), TensorSpec.OFF), List.of());
        CalibratedParams w = WeightCalibrator.calibrate(m, plan);
        Layer qkv = m.layers().get("blocks.0.attn.qkv");
        Tensor orig = qkv.param("weight");
        QuantizedModel q = QuantizedModel.attach(m, plan, w);
        int quantized = 0;
        for (var e : plan.specs().entrySet()) if (e.getValue().weight().enabled()) quantized++;
        assertEquals(quantized, q.weightQuantizations(), "every quantized weight once at attach");
        Recorder rec = new Recorder();
        qkv.addHook(rec);
        for (int i = 0; i < 3; i++) m.forward(x(m, 1, i), new float[] {100 * i}, new int[] {i});
        assertEquals(quantized, q.weightQuantizations(), "no re-quantization per call");
        assertEquals(3, rec.weights.size());
        assertSame(rec.weights.get(0), rec.weights.get(2), "the cached tensor is reused");
        Tensor expected = Quantizer.withParams(INT4, Granularity.group(16), Layout.WEIGHT, w.weight("blocks.0.attn.qkv").params()).fakeQuant(orig);
        assertTrue(bitsEqual(expected, rec.weights.get(0)));
        assertNotEquals(orig.data()[0], rec.weights.get(0).data()[0] + 1f);   // sanity: distinct tensors
        // replacing the weight recomputes once
        Tensor w2 = orig.copy();
        for (int i = 0; i < w2.size(); i++) w2.data()[i] *= 0.5f;
        qkv.setParam("weight", w2);
        m.forward(x(m, 1, 7), new float[] {5}, new int[] {1});
        m.forward(x(m, 1, 8), new float[] {5}, new int[] {1});
        assertEquals(quantized + 1, q.weightQuantizations());
        assertTrue(bitsEqual(Quantizer.withParams(INT4, Granularity.group(16), Layout.WEIGHT, w.weight("blocks.0.attn.qkv").params()).fakeQuant(w2),
                rec.weights.get(4)));
        q.detach();
    }

    /** Runs one layer with hooks: the recorder before attach sees the FP input, the one after sees the quantized input. */
    static Tensor[] runLayer(Layer l, QuantizedModel q, Tensor in, float[] t) {
        Recorder after = new Recorder();
        l.addHook(after);
        try {
            l.forward(in, new ForwardContext(t, null));
        } finally {
            l.removeHook(after);
        }
        return new Tensor[] {in, after.inputs.get(0)};
    }

    @Test void staticInputsUseTheirFixedParameters() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.OFF, TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.MINMAX,
                CalibrationMode.STATIC)), List.of());
        QuantParams p = INT8.paramsForRange(new float[] {-1}, new float[] {1});
        CalibratedParams cp = CalibratedParams.EMPTY.withInput("blocks.1.mlp.fc2", InputParams.shared(ActivationParams.of(p)));
        // only fc2 gets parameters: attaching the whole plan must fail and name a layer without them
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> QuantizedModel.attach(m, plan, cp));
        assertTrue(ex.getMessage().contains("no calibrated parameters"), ex.getMessage());
        QuantPlan one = QuantPlan.resolve(m, new PointSpec(TensorSpec.OFF, TensorSpec.OFF), List.of(new LayerOverride("blocks.1.mlp.fc2",
                SpecPatch.KEEP, SpecPatch.of(plan.defaults().input()))));
        QuantizedModel q = QuantizedModel.attach(m, one, cp);
        Tensor in = rand(new Random(3), 2, 2, 16, 256);
        Tensor[] r = runLayer(m.layers().get("blocks.1.mlp.fc2"), q, in, new float[] {1, 2});
        Tensor expected = Quantizer.withParams(INT8, Granularity.TENSOR, Layout.ACTIVATION, p).fakeQuant(in);
        assertTrue(bitsEqual(expected, r[1]));
        float max = 0;
        for (float v : r[1].data()) max = Math.max(max, Math.abs(v));
        // asymmetric INT8 on [-1, 1]: step 2/255, zero point 128, so the grid ends at -128 * 2/255 (the inputs, N(0, 2), are clipped)
        assertEquals((float) (128 * 2.0 / 255), max, 1e-6f);
        // fixed parameters do not follow the input's scale
        Tensor in2 = in.copy();
        for (int i = 0; i < in2.size(); i++) in2.data()[i] *= 2;
        Tensor q2 = runLayer(m.layers().get("blocks.1.mlp.fc2"), q, in2, new float[] {1, 2})[1];
        assertTrue(bitsEqual(Quantizer.withParams(INT8, Granularity.TENSOR, Layout.ACTIVATION, p).fakeQuant(in2), q2));
        q.detach();
    }

    @Test void dynamicInputsFollowEveryInput() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        NumberFormat fp8 = FpFormat.of(4, 3);
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.OFF, TensorSpec.input(fp8, Granularity.TOKEN, RangeSpec.MINMAX,
                CalibrationMode.DYNAMIC)), List.of());
        QuantizedModel q = QuantizedModel.attach(m, plan, CalibratedParams.EMPTY);
        Layer fc1 = m.layers().get("blocks.0.mlp.fc1");
        Tensor in = rand(new Random(4), 1, 2, 16, 64);
        Tensor got = runLayer(fc1, q, in, new float[] {1, 1})[1];
        Tensor expected = Quantizer.dynamic(fp8, Granularity.TOKEN, Layout.ACTIVATION).fakeQuant(in);
        assertTrue(bitsEqual(expected, got));
        // per-token absmax maxval: quantizing 2x gives exactly 2x (FP grids scale with maxval)
        Tensor in2 = in.copy();
        for (int i = 0; i < in2.size(); i++) in2.data()[i] *= 2;
        Tensor got2 = runLayer(fc1, q, in2, new float[] {1, 1})[1];
        for (int i = 0; i < got.size(); i++) assertEquals(2 * got.data()[i], got2.data()[i], 0f);
        // each token row's max magnitude is on the grid (it is the row's maxval)
        for (int r = 0; r < 32; r++) {
            float mx = 0, qmx = 0;
            for (int c = 0; c < 64; c++) { mx = Math.max(mx, Math.abs(in.data()[r * 64 + c])); qmx = Math.max(qmx, Math.abs(got.data()[r * 64 + c])); }
            assertEquals(mx, qmx, 0f, "row " + r);
        }
        q.detach();
    }

    @Test void perTimestepParametersAreLookedUpByTimestepValue() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        TensorSpec pt = TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.PER_TIMESTEP);
        QuantPlan plan = QuantPlan.resolve(m, PointSpec.FP, List.of(new LayerOverride("blocks.0.attn.proj", SpecPatch.KEEP, SpecPatch.of(pt))));
        QuantParams p10 = INT8.paramsForRange(new float[] {-1}, new float[] {1}), p20 = INT8.paramsForRange(new float[] {-4}, new float[] {4});
        CalibratedParams cp = CalibratedParams.EMPTY.withInput("blocks.0.attn.proj",
                InputParams.perTimestep(Map.of(10f, ActivationParams.of(p10), 20f, ActivationParams.of(p20))));
        QuantizedModel q = QuantizedModel.attach(m, plan, cp);
        Layer proj = m.layers().get("blocks.0.attn.proj");
        Tensor in = rand(new Random(5), 2, 2, 16, 64);
        Tensor at10 = runLayer(proj, q, in, new float[] {10, 10})[1];
        Tensor at20 = runLayer(proj, q, in, new float[] {20, 20})[1];
        assertTrue(bitsEqual(Quantizer.withParams(INT8, Granularity.TENSOR, Layout.ACTIVATION, p10).fakeQuant(in), at10));
        assertTrue(bitsEqual(Quantizer.withParams(INT8, Granularity.TENSOR, Layout.ACTIVATION, p20).fakeQuant(in), at20));
        assertTrue(!bitsEqual(at10, at20), "different timesteps, different parameters");
        IllegalArgumentException mixed = assertThrows(IllegalArgumentException.class, () -> runLayer(proj, q, in, new float[] {10, 20}));
        assertTrue(mixed.getMessage().contains("blocks.0.attn.proj") && mixed.getMessage().contains("one timestep value"), mixed.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> runLayer(proj, q, in, new float[] {30, 30}));
        assertTrue(unknown.getMessage().contains("t = 30") && unknown.getMessage().contains("20, 10"), unknown.getMessage());
        q.detach();
    }

    @Test void perTimestepCalibrationKeysByValue() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        TensorSpec pt = TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.PER_TIMESTEP);
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.OFF, pt), List.of());
        CalibratedParams cp;
        try (ActivationCalibrator ac = new ActivationCalibrator(m, plan, CalibratedParams.EMPTY, 1 << 12, 0)) {
            Tensor small = x(m, 2, 1), big = x(m, 2, 1);
            for (int i = 0; i < big.size(); i++) big.data()[i] *= 8;
            ac.observe(new CalibBatch(999f, big, new int[] {0, 1}, new int[] {0, 1}));
            ac.observe(new CalibBatch(21f, small, new int[] {0, 1}, new int[] {2, 3}));
            cp = ac.result();
        }
        InputParams ip = cp.input("x_embedder.proj");
        assertEquals(java.util.Set.of(21f, 999f), ip.perTimestep().keySet());
        // the input of the first layer is x itself: t = 999 saw 8x larger values
        float s21 = ip.at(21f).part(0).scale(0), s999 = ip.at(999f).part(0).scale(0);
        assertEquals(8 * s21, s999, 1e-5f * s999);
        QuantizedModel q = QuantizedModel.attach(m, plan, cp);
        m.forward(x(m, 1, 3), new float[] {21}, new int[] {4});
        assertThrows(IllegalArgumentException.class, () -> m.forward(x(m, 1, 3), new float[] {500}, new int[] {4}));
        q.detach();
    }

    @Test void concatSplitUsesTwoParameterSets() {
        QuantTestSupport.TinyConcatModel m = new QuantTestSupport.TinyConcatModel(1);
        PointSpec spec = new PointSpec(TensorSpec.OFF, TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC));
        QuantPlan plan = QuantPlan.resolve(m, PointSpec.FP, List.of(new LayerOverride("up.conv1", SpecPatch.KEEP, SpecPatch.of(spec.input()))));
        assertEquals(2, plan.point("up.conv1").splitAt());
        // channels 0-1 in [-1, 1], channels 2-4 in [-8, 8]
        Random r = new Random(6);
        Tensor in = Tensor.zeros(2, 5, 4, 4);
        for (int n = 0; n < 2; n++) for (int c = 0; c < 5; c++) for (int i = 0; i < 16; i++)
            in.data()[(n * 5 + c) * 16 + i] = (float) ((r.nextDouble() * 2 - 1) * (c < 2 ? 1 : 8));
        CalibratedParams cp;
        try (ActivationCalibrator ac = new ActivationCalibrator(m, plan, CalibratedParams.EMPTY, 1 << 12, 0)) {
            ac.observe(new CalibBatch(7f, in, null, new int[] {0, 1}));
            cp = ac.result();
        }
        ActivationParams ap = cp.input("up.conv1").shared();
        assertEquals(2, ap.size(), "two parameter sets");
        float lo0 = Float.MAX_VALUE, hi0 = -Float.MAX_VALUE, lo1 = Float.MAX_VALUE, hi1 = -Float.MAX_VALUE;
        for (int n = 0; n < 2; n++) for (int c = 0; c < 5; c++) for (int i = 0; i < 16; i++) {
            float v = in.data()[(n * 5 + c) * 16 + i];
            if (c < 2) { lo0 = Math.min(lo0, v); hi0 = Math.max(hi0, v); } else { lo1 = Math.min(lo1, v); hi1 = Math.max(hi1, v); }
        }
        QuantParams pa = INT8.paramsForRange(new float[] {lo0}, new float[] {hi0}), pb = INT8.paramsForRange(new float[] {lo1}, new float[] {hi1});
        assertEquals(pa, ap.part(0));
        assertEquals(pb, ap.part(1));
        QuantizedModel q = QuantizedModel.attach(m, plan, cp);
        Tensor got = runLayer(m.layers().get("up.conv1"), q, in, new float[] {7, 7})[1];
        for (int n = 0; n < 2; n++) for (int c = 0; c < 5; c++) for (int i = 0; i < 16; i++) {
            int k = (n * 5 + c) * 16 + i;
            float e = (c < 2 ? INT8 : INT8).fakeQuant(in.data()[k], c < 2 ? pa : pb, 0);
            assertEquals(Float.floatToRawIntBits(e), Float.floatToRawIntBits(got.data()[k]), "n " + n + " c " + c + " i " + i);
        }
        q.detach();
        CalibratedParams one = CalibratedParams.EMPTY.withInput("up.conv1", InputParams.shared(ActivationParams.of(pa)));
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> QuantizedModel.attach(m, plan, one));
        assertTrue(ex.getMessage().contains("up.conv1") && ex.getMessage().contains("skip concatenation"), ex.getMessage());
    }

    @Test void nonFiniteWeightsAreRejectedWithTheLayerName() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        m.layers().get("blocks.1.attn.qkv").param("weight").data()[5] = Float.NaN;
        QuantPlan plan = QuantPlan.resolve(m, w4a8Static(), List.of());
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> WeightCalibrator.calibrate(m, plan));
        assertTrue(ex.getMessage().contains("blocks.1.attn.qkv.weight") && ex.getMessage().contains("NaN"), ex.getMessage());
    }

    @Test void unknownParameterLayersAndArchitectureMismatchAreErrors() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantPlan plan = QuantPlan.resolve(m, PointSpec.FP, List.of());
        CalibratedParams bad = CalibratedParams.EMPTY.withWeight("blocks.0.norm1", WeightParams.rtn(QuantParams.of(1f)));
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> QuantizedModel.attach(m, plan, bad));
        assertTrue(ex.getMessage().contains("blocks.0.norm1"), ex.getMessage());
        QuantTestSupport.TinyConcatModel tiny = new QuantTestSupport.TinyConcatModel(2);
        ex = assertThrows(IllegalArgumentException.class, () -> QuantizedModel.attach(tiny, plan, CalibratedParams.EMPTY));
        assertTrue(ex.getMessage().contains("DiT") && ex.getMessage().contains("Tiny"), ex.getMessage());
    }
}
