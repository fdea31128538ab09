package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingResult;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.ActivationKernels;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The cpu-int8 backend against the engine's fake quantization (the reference, same codes and scales): identical input
 * codes, per-layer outputs equal up to float rounding (a bound from the absolute products), end-to-end images of the
 * golden dit-small within PSNR 40 dB, and the bookkeeping (labels, hand-over, close).
 */
class CpuInt8BackendTest {
    static final ForwardContext CTX = new ForwardContext(new float[] {500f, 500f}, new int[] {1, 2});

    static Tensor rand(Random r, double std, int... shape) { return QuantTestSupport.rand(r, std, shape); }

    /**
     * |a - b| <= rel * (|x̂| |ŵ|^T + |bias|) + 1e-30 elementwise: the worst case of reordering and rounding the products
     * of the same dequantized values, from the absolute values (an independent bound, not a fitted tolerance).
     */
    static void assertCloseToFakeQuant(Tensor fake, Tensor real, Tensor xq, Tensor wq, Tensor bias, double rel, String what) {
        assertEquals(fake.size(), real.size(), what);
        Tensor ax = abs(xq), aw = abs(wq);
        Tensor bound = Ops.linear(ax, aw, bias == null ? null : abs(bias));
        for (int i = 0; i < fake.size(); i++) {
            double tol = rel * bound.data()[i] + 1e-30;
            assertTrue(Math.abs(fake.data()[i] - real.data()[i]) <= tol, what + " element " + i + ": fake " + fake.data()[i] + ", int8 "
                    + real.data()[i] + ", bound " + tol);
        }
    }

    static Tensor abs(Tensor t) {
        float[] d = t.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = Math.abs(d[i]);
        return Tensor.of(d, t.shape());
    }

    @Test void inputCodesAreTheFakeQuantCodes() {
        Random r = new Random(3);
        DiT m = QuantTestSupport.randomDiT(small(), 1, 0.05);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Linear fc1 = (Linear) m.layers().get("blocks.0.mlp.fc1");
        Int8Linear p = Int8Linear.pack(fc1.name(), q.weightCodes(fc1.name()), fc1.param("bias"), IntFormat.symmetric(8));
        int rows = 6, in = fc1.in();
        Tensor x = rand(r, 2.0, rows, in);
        float[] xd = x.data();
        // row 1: absmax 63.5 gives the step 0.5 exactly, and quotients on exact half-integers (ties to even)
        for (int i = 0; i < in; i++) xd[in + i] = 0.25f * (i % 9 - 4) + (i % 2 == 0 ? 0.125f : 0f);
        xd[in] = 63.5f;
        xd[in + 1] = 1.25f;    // 2.5 -> 2
        xd[in + 2] = -0.75f;   // -1.5 -> -2
        xd[in + 3] = 0.25f;    // 0.5 -> 0
        // row 4: values within an ulp of (k + 1/2) d, where x * (1/d) and x / d may round differently
        float amax4 = 1.7f;
        float d4 = (float) ((double) amax4 / 127);
        xd[4 * in] = amax4;
        for (int i = 1; i < in; i++) {
            float h = ((i % 100) - 50 + 0.5f) * d4;
            xd[4 * in + i] = switch (i % 3) { case 0 -> Math.nextUp(h); case 1 -> Math.nextDown(h); default -> h; };
        }
        // row 2: all zeros (step 0); row 3: one huge value
        for (int i = 0; i < in; i++) xd[2 * in + i] = 0f;
        xd[3 * in + 5] = 3e30f;
        byte[] codes = new byte[rows * in];
        float[] steps = new float[rows];
        p.quantizeInto(x, Float.NaN, codes, steps);
        assertEquals(0.5f, steps[1]);
        assertEquals(2, codes[in + 1]);
        assertEquals(-2, codes[in + 2]);
        assertEquals(0, codes[in + 3]);
        assertEquals(127, codes[in]);
        assertEquals(0f, steps[2]);
        Tensor fake = Tensor.zeros(rows, in);
        ActivationKernels.fakeQuant(IntFormat.symmetric(8), Granularity.TOKEN, null, x, fake, "x");
        for (int i = 0; i < x.size(); i++) assertEquals(Float.floatToRawIntBits(fake.data()[i]) & 0x7fffffff,
                Float.floatToRawIntBits(codes[i] * steps[i / in]) & 0x7fffffff, "element " + i + " = code " + codes[i] + " * step " + steps[i / in]);
        q.detach();
    }

    @Test void staticInputCodesClampAndMatchTheFakeQuantCodes() {
        Random r = new Random(5);
        DiT m = QuantTestSupport.randomDiT(small(), 1, 0.05);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Linear l = (Linear) m.layers().get("blocks.1.attn.proj");
        Int8Linear p = Int8Linear.pack(l.name(), q.weightCodes(l.name()), l.param("bias"), IntFormat.symmetric(8));
        Tensor x = rand(r, 1.0, 4, l.in());
        x.data()[3] = Float.POSITIVE_INFINITY;
        x.data()[4] = -1e9f;
        float step = 0.0123f;
        byte[] codes = new byte[x.size()];
        float[] steps = new float[4];
        p.quantizeInto(x, step, codes, steps);
        Tensor fake = Tensor.zeros(x.shape());
        ActivationKernels.fakeQuant(IntFormat.symmetric(8), Granularity.TENSOR, QuantParams.of(step), x, fake, "x");
        assertEquals(127, codes[3]);
        assertEquals(-127, codes[4]);
        for (int i = 0; i < x.size(); i++) assertEquals(fake.data()[i], codes[i] * step, "element " + i);
        q.detach();
    }

    @Test void everyLinearLayerAgreesWithFakeQuantToFloatRounding() {
        DiT m = QuantTestSupport.randomDiT(small(), 2, 0.08);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Random r = new Random(8);
        // per-layer fake-quant reference first, then the same layers on int8
        Map<String, Tensor> inputs = new TreeMap<>(), fakeOut = new TreeMap<>();
        for (Layer l : m.layers().all()) {
            if (!(l instanceof Linear lin)) continue;
            Tensor x = rand(r, 1.5, 2, 5, lin.in());
            inputs.put(l.name(), x);
            fakeOut.put(l.name(), l.forward(x, CTX));
        }
        try (PreparedDenoiser d = new CpuInt8Backend().prepare(m, q)) {
            assertEquals(ExecutionInfo.Execution.MIXED, d.execution().execution(), d.execution().label());
            assertEquals(inputs.size(), d.execution().realLayers(), "every Linear runs on int8");
            assertEquals(1, d.execution().fakeLayers(), "x_embedder.proj (a conv) stays fake");
            for (var e : inputs.entrySet()) {
                Linear l = (Linear) m.layers().get(e.getKey());
                Tensor x = e.getValue();
                Tensor xq = Tensor.zeros(x.shape());
                ActivationKernels.fakeQuant(IntFormat.symmetric(8), Granularity.TOKEN, null, x, xq, "x");
                Tensor real = l.forward(x, CTX);
                assertCloseToFakeQuant(fakeOut.get(e.getKey()), real, xq, q.quantizedWeight(l.name()), l.param("bias"), 1e-5, l.name());
                assertNotEquals(0.0, maxAbsDiff(real, Ops.linear(x, l.param("weight"), l.param("bias"))), "not the FP32 layer");
            }
        }
        q.detach();
    }

    @Test void w4WeightsAndStaticPerTimestepInputsRunOnInt8Too() {
        DiT m = QuantTestSupport.randomDiT(small(), 4, 0.08);
        PointSpec d = new PointSpec(TensorSpec.weight(IntFormat.symmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(IntFormat.symmetricFullRange(8), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.PER_TIMESTEP));
        String layer = "blocks.0.attn.qkv";
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(TensorSpec.OFF, TensorSpec.OFF),
                List.of(new LayerOverride(layer, SpecPatch.of(d.weight()), SpecPatch.of(d.input()))));
        CalibratedParams w = WeightCalibrator.calibrate(m, plan);
        CalibratedParams all = w.withInput(layer, InputParams.perTimestep(Map.of(500f, ActivationParams.of(QuantParams.of(0.02f)),
                100f, ActivationParams.of(QuantParams.of(0.03f)))));
        QuantizedModel q = QuantizedModel.attach(m, plan, all);
        Linear l = (Linear) m.layers().get(layer);
        Tensor x = rand(new Random(1), 1.0, 2, 5, l.in());
        Tensor fake = l.forward(x, CTX);
        try (PreparedDenoiser p = new CpuInt8Backend().prepare(m, q)) {
            assertEquals(ExecutionInfo.Execution.REAL_LOW_BIT, p.execution().execution(), p.execution().label());
            Tensor real = l.forward(x, CTX);
            Tensor xq = Tensor.zeros(x.shape());
            ActivationKernels.fakeQuant(IntFormat.symmetricFullRange(8), Granularity.TENSOR, QuantParams.of(0.02f), x, xq, "x");
            assertCloseToFakeQuant(fake, real, xq, q.quantizedWeight(layer), l.param("bias"), 1e-5, layer);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> l.forward(x, new ForwardContext(new float[] {300f, 300f}, new int[] {1, 2})));
            assertTrue(e.getMessage().contains(layer) && e.getMessage().contains("t = 300"), e.getMessage());
        }
        q.detach();
    }

    @Test void unsupportedLayersStayFakeAndTheLabelSaysSo() {
        DiT m = QuantTestSupport.randomDiT(small(), 5, 0.08);
        QuantPlan base = Int8Specs.plan(m, 8);
        QuantPlan plan = QuantPlan.resolve(m, base.defaults(), concat(base.overrides(), List.of(
                new LayerOverride("blocks.1.mlp.fc2", SpecPatch.KEEP, new SpecPatch(null, IntFormat.asymmetric(8), null, null, null)),
                new LayerOverride("final_layer.linear", SpecPatch.OFF, SpecPatch.OFF))));
        QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
        try (PreparedDenoiser p = new CpuInt8Backend().prepare(m, q)) {
            ExecutionInfo info = p.execution();
            assertEquals(2, info.fakeLayers(), info.label());
            assertTrue(info.real());
            String label = info.label();
            assertTrue(label.startsWith("cpu-int8: real low-bit kernels (" + CpuInt8Backend.KERNELS + ") on " + info.realLayers() + " of "
                    + (info.realLayers() + 2) + " quantized layers, fake quantization on 2"), label);
            assertTrue(label.contains("blocks.1.mlp.fc2: input format int8-asym is not symmetric INT"), label);
            assertTrue(label.contains("x_embedder.proj: not a Linear layer"), label);
            assertTrue(q.handedOver("blocks.0.mlp.fc1"));
            assertFalse(q.handedOver("blocks.1.mlp.fc2"));
            assertTrue(QuantizedModel.fakeQuantized(m.layers().get("blocks.1.mlp.fc2")));
            assertFalse(QuantizedModel.fakeQuantized(m.layers().get("blocks.0.mlp.fc1")));
        }
        q.detach();
    }

    static <T> List<T> concat(List<T> a, List<T> b) {
        List<T> r = new java.util.ArrayList<>(a);
        r.addAll(b);
        return r;
    }

    @Test void closeRestoresFakeQuantizationBitwise() {
        DiT m = QuantTestSupport.randomDiT(small(), 6, 0.08);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Tensor x = rand(new Random(2), 1.0, 2, 4, 8, 8);
        float[] t = {900f, 10f};
        int[] y = {3, 10};
        Tensor before = m.forward(x, t, y);
        PreparedDenoiser p = new CpuInt8Backend().prepare(m, q);
        Tensor during = p.forward(x, t, y);
        assertTrue(maxAbsDiff(before, during) > 0, "int8 rounding differs somewhere");
        p.close();
        p.close();
        Tensor after = m.forward(x, t, y);
        assertEquals(0.0, maxAbsDiff(before, after), "fake quantization restored exactly");
        for (Layer l : m.layers().all()) assertFalse(l.hooks().stream().anyMatch(h -> h instanceof CpuInt8Backend.Hook), l.name());
        assertThrows(IllegalStateException.class, () -> p.forward(x, t, y));
        q.detach();
    }

    @Test void nonFiniteInputsAreRefusedNamingTheLayer() {
        DiT m = QuantTestSupport.randomDiT(small(), 7, 0.08);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Linear l = (Linear) m.layers().get("blocks.0.mlp.fc2");
        Tensor x = rand(new Random(3), 1.0, 3, l.in());
        x.data()[l.in() + 7] = Float.NaN;
        try (PreparedDenoiser p = new CpuInt8Backend().prepare(m, q)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> l.forward(x, CTX));
            assertTrue(e.getMessage().contains("blocks.0.mlp.fc2") && e.getMessage().contains("token 1, channel 7"), e.getMessage());
            IllegalArgumentException w = assertThrows(IllegalArgumentException.class, () -> l.forward(rand(new Random(1), 1, 2, 7), CTX));
            assertTrue(w.getMessage().contains("blocks.0.mlp.fc2"), w.getMessage());
        }
        q.detach();
    }

    /** End to end on the golden dit-small: DDIM images of cpu-int8 within PSNR 40 dB of fake quantization. */
    @Test void sampledImagesMatchFakeQuantization() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantizedModel q = Int8Specs.attach(m, 8);
        SamplingResult fake, fp;
        try (PreparedDenoiser jvm = ExecutionBackends.prepare(ExecutionBackend.JVM, m, q)) {
            fake = Sampling.runToEnd(request(m, jvm), false);
        }
        SamplingResult real;
        try (PreparedDenoiser int8 = ExecutionBackends.prepare(ExecutionBackend.CPU_INT8, m, q)) {
            real = Sampling.runToEnd(request(m, int8), false);
        }
        q.detach();
        fp = Sampling.runToEnd(request(m, m), false);
        assertEquals(ExecutionInfo.Execution.FAKE_QUANTIZATION, fake.execution().execution());
        assertEquals(ExecutionInfo.Execution.MIXED, real.execution().execution());
        assertEquals(ExecutionInfo.Execution.FULL_PRECISION, fp.execution().execution());
        double psnr = ImageMetrics.psnr(clamp(fake.samples()), clamp(real.samples()), ImageMetrics.RANGE_SIGNED_UNIT);
        double psnrFp = ImageMetrics.psnr(clamp(fake.samples()), clamp(fp.samples()), ImageMetrics.RANGE_SIGNED_UNIT);
        assertTrue(psnr >= 40, "PSNR int8 vs fake quantization " + psnr + " dB");
        assertTrue(psnr > psnrFp + 10, "int8 is much closer to fake quantization (" + psnr + " dB) than FP32 is (" + psnrFp + " dB)");
    }

    static SampleRequest request(DiT m, io.diffquant.engine.model.Denoiser d) {
        return SampleRequest.forModel(m, 2).denoiser(d).ddim(0).respacing("ddim10").seed(4).labels(3, 7).build();
    }

    static float[] clamp(Tensor t) {
        float[] d = t.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = Math.max(-1f, Math.min(1f, d[i]));
        return d;
    }

    static double maxAbsDiff(Tensor a, Tensor b) {
        double m = 0;
        for (int i = 0; i < a.size(); i++) m = Math.max(m, Math.abs(a.data()[i] - b.data()[i]));
        return m;
    }

    /** 8x8x4 DiT, patch 2, hidden 64, depth 2, 4 heads, 10 classes, learned sigma. */
    static io.diffquant.engine.model.dit.DiTConfig small() {
        return new io.diffquant.engine.model.dit.DiTConfig(8, 2, 4, 64, 2, 4, 4.0, 0.1, 10, true);
    }
}
