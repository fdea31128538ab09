package io.diffquant.kernels.tornado;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One suite for every backend (plain JVM loops, TornadoVM loop kernels, TornadoVM tuned kernels): each kernel against the
 * engine's fake-quant reference with the same codes and scales. Tolerances: activation codes and scales exactly equal;
 * GEMMs within 1e-5 of sum |x̂||ŵ| (float accumulation of exact products); element-wise and row kernels within 1e-5
 * relative (different exp/sqrt implementations). Whole blocks and denoisers: within 1e-4 of the output range when no
 * activation is quantized dynamically; with dynamic activations a code can flip where its input lies within float rounding
 * of a rounding boundary (the GEMMs and exp differ from the engine's in the last bits), and one flipped code moves a whole
 * token's outputs by up to one activation step, so there: max error &lt;= 1e-2 of the range and RMS error &lt;= 5e-3 of the
 * reference's RMS (a wrong scale, zero point or layout gives errors of 10% and more).
 */
abstract class KernelContract {

    abstract KernelRunner runner();

    /**
     * Plans of the block and denoiser tests (null = FP32, else an index into {@link #blockPlans()}). The TornadoVM suites
     * take a subset: every plan compiles a dozen kernels, minutes on a shared 2-core machine; the GEMM test covers every
     * format on every backend.
     */
    List<Integer> blockPlanChoice() { return java.util.Arrays.asList(null, 0, 1, 2); }

    List<Integer> denoiserPlanChoice() { return java.util.Arrays.asList(null, 0, 1, 2); }

    private static List<TensorSpec[]> chosen(List<Integer> idx) {
        List<TensorSpec[]> out = new ArrayList<>();
        for (Integer i : idx) out.add(i == null ? null : blockPlans().get(i));
        return out;
    }

    static FloatArray fa(Tensor t) { return Host.floats(t.data()); }

    // ------------------------------------------------------------------ activation quantization

    @Test
    void perTokenInt8CodesAndScalesEqualTheEngines() {
        SplittableRandom r = new SplittableRandom(1);
        int rows = 6, cols = 150;
        Tensor x = Refs.randn(r, 3f, rows, cols);
        float[] d = x.data();
        // row 0: amax 63.5 -> step exactly 0.5; 1.25 / 0.5 = 2.5 and -0.75 / 0.5 = -1.5 are exact ties (to even: 2, -2)
        for (int k = 0; k < cols; k++) d[k] = 0.1f * (k % 7);
        d[0] = 63.5f;
        d[1] = 1.25f;
        d[2] = -0.75f;
        d[3] = 0.25f;
        d[4] = -63.5f;
        // row 1: all zero -> step 0, codes 0
        for (int k = 0; k < cols; k++) d[cols + k] = 0f;
        for (int qmax : new int[] {127, 7}) {
            IntFormat f = IntFormat.symmetric(qmax == 127 ? 8 : 4);
            QuantizedTensor ref = Quantizer.dynamic(f, Granularity.TOKEN, Layout.ACTIVATION).quantize(x);
            Int8Array q = new Int8Array(rows * cols);
            FloatArray s = new FloatArray(rows);
            runner().quantizePerToken(fa(x), q, s, rows, cols, qmax);
            byte[] got = Host.get(q, rows * cols);
            for (int i = 0; i < got.length; i++) {
                int want = f.levelOfCode(ref.codes()[i] & 0xFF);
                if (got[i] != want) throw new AssertionError(f.id() + " per token on " + runner().describe() + ": code " + i + " is "
                        + got[i] + ", the engine's level is " + want + " (x = " + d[i] + ", step " + ref.params().scale(i / cols) + ")");
            }
            assertArrayEquals(ref.params().scales(), Host.get(s, rows), 0f, f.id() + " per-token steps");
            if (qmax == 127) {
                assertEquals(2, got[1]);
                assertEquals(-2, got[2]);
                assertEquals(0, got[3]);
                assertEquals(0f, s.get(1));
            }
        }
    }

    @Test
    void staticInt8CodesEqualTheEnginesAndClamp() {
        SplittableRandom r = new SplittableRandom(2);
        int rows = 5, cols = 33;
        Tensor x = Refs.randn(r, 4f, rows, cols);
        float step = 0.025f;   // 127 * 0.025 = 3.175: larger |x| saturate
        IntFormat f = IntFormat.symmetricFullRange(8);
        QuantizedTensor ref = Quantizer.withParams(f, Granularity.TENSOR, Layout.ACTIVATION, QuantParams.of(step)).quantize(x);
        Int8Array q = new Int8Array(rows * cols);
        FloatArray s = new FloatArray(rows);
        runner().quantizeStatic(fa(x), q, s, step, f.qmin(), f.qmax(), rows, cols);
        byte[] got = Host.get(q, rows * cols);
        int saturated = 0;
        for (int i = 0; i < got.length; i++) {
            assertEquals(f.levelOfCode(ref.codes()[i] & 0xFF), got[i], "static code " + i + " (x = " + x.data()[i] + ")");
            if (got[i] == -128 || got[i] == 127) saturated++;
        }
        assertTrue(saturated > 0, "the test input should reach the clamp");
        for (int i = 0; i < rows; i++) assertEquals(step, s.get(i));
    }

    // ------------------------------------------------------------------ GEMMs

    /** One linear-layer case: weight format and granularity, activation format (null: FP32 activations), sizes. */
    record LinearCase(String name, NumberFormat wf, Granularity wg, IntFormat af, boolean staticAct, int rows, int in, int out) {}

    static List<LinearCase> linearCases() {
        List<LinearCase> c = new ArrayList<>();
        c.add(new LinearCase("fp32", null, null, null, false, 9, 40, 24));
        c.add(new LinearCase("w8a8 int8-sym channel", IntFormat.symmetric(8), Granularity.CHANNEL, IntFormat.symmetric(8), false, 10, 64, 48));
        c.add(new LinearCase("w8a8 int8-asym group32", IntFormat.asymmetric(8), Granularity.group(32), IntFormat.symmetric(8), false, 7, 96, 40));
        c.add(new LinearCase("w8a8 int8-sym tensor, static act", IntFormat.symmetric(8), Granularity.TENSOR, IntFormat.symmetricFullRange(8), true, 6, 48, 20));
        c.add(new LinearCase("w6a8 int6-sym group16", IntFormat.symmetric(6), Granularity.group(16), IntFormat.symmetric(8), false, 5, 64, 33));
        c.add(new LinearCase("w4a8 int4-sym group32", IntFormat.symmetric(4), Granularity.group(32), IntFormat.symmetric(8), false, 11, 128, 36));
        c.add(new LinearCase("w4a8 int4-asym channel, odd in", IntFormat.asymmetric(4), Granularity.CHANNEL, IntFormat.symmetric(8), false, 4, 45, 19));
        c.add(new LinearCase("w4a8 int4-sym group20 (untiled)", IntFormat.symmetric(4), Granularity.group(20), IntFormat.symmetric(8), false, 3, 60, 17));
        c.add(new LinearCase("w4a4 int4-sym group16", IntFormat.symmetric(4), Granularity.group(16), IntFormat.symmetric(4), false, 8, 64, 16));
        c.add(new LinearCase("fp4 e2m1 channel", FpFormat.of(2, 1), Granularity.CHANNEL, null, false, 6, 48, 30));
        c.add(new LinearCase("fp4 e2m1 group32", FpFormat.of(2, 1), Granularity.group(32), null, false, 6, 96, 21));
        c.add(new LinearCase("nvfp4 block16", BlockFormat.NVFP4, Granularity.block(16), null, false, 7, 80, 26));
        c.add(new LinearCase("mxfp4 block32", BlockFormat.MXFP4, Granularity.block(32), null, false, 5, 64, 18));
        return c;
    }

    @Test
    void everyGemmMatchesFakeQuantization() {
        SplittableRandom r = new SplittableRandom(3);
        for (LinearCase c : linearCases()) {
            Tensor w = Refs.randn(r, 0.2f, c.out, c.in), b = Refs.randn(r, 0.5f, c.out), x = Refs.randn(r, 1.5f, c.rows, c.in);
            PackedLinear l;
            Tensor wHat, xHat;
            float step = 0.02f;
            if (c.wf == null) {
                l = PackedLinear.fp32("test", w, b);
                wHat = w;
                xHat = x;
            } else {
                QuantizedTensor qt = Refs.quantizeWeight(w, c.wf, c.wg);
                wHat = qt.dequantize();
                if (c.af == null) {
                    l = PackedLinear.quantized("test", qt, b, PackedLinear.ActMode.NONE, null, 0f);
                    xHat = x;
                } else if (c.staticAct) {
                    l = PackedLinear.quantized("test", qt, b, PackedLinear.ActMode.STATIC_TENSOR, c.af, step);
                    xHat = Quantizer.withParams(c.af, Granularity.TENSOR, Layout.ACTIVATION, QuantParams.of(step)).fakeQuant(x);
                } else {
                    l = PackedLinear.quantized("test", qt, b, PackedLinear.ActMode.DYNAMIC_TOKEN, c.af, 0f);
                    xHat = Refs.fakeQuantDynamic(x, c.af, Granularity.TOKEN);
                }
            }
            FloatArray y = new FloatArray(c.rows * c.out);
            runner().linear(l, fa(x), y, c.rows, new Int8Array(c.rows * c.in), new FloatArray(c.rows));
            double[][] ref = Refs.linear(xHat, wHat, b);
            Refs.assertClose(c.name + " on " + runner().describe(), Host.get(y, c.rows * c.out), ref[0], ref[1], 1e-5, 1e-6);
        }
    }

    // ------------------------------------------------------------------ DiT block pieces

    @Test
    void layerNormModulateMatchesTheEngine() {
        SplittableRandom r = new SplittableRandom(4);
        int n = 2, t = 9, d = 100, chunks = 6;
        Tensor x = Refs.randn(r, 2f, n, t, d), mod = Refs.randn(r, 0.5f, n, chunks * d);
        for (int[] sc : new int[][] {{0, 1}, {3, 4}}) {
            Tensor ref = TransformerOps.layerNormModulate(x, mod, chunks, sc[0], sc[1], 1e-6f);
            FloatArray y = new FloatArray(n * t * d);
            runner().layerNormModulate(fa(x), fa(mod), y, n * t, t, d, chunks, sc[0], sc[1], 1e-6f);
            Refs.assertClose("layerNormModulate on " + runner().describe(), Host.get(y, n * t * d), ref.data(), 1e-5, 1e-5);
        }
    }

    @Test
    void gatedResidualMatchesTheEngine() {
        SplittableRandom r = new SplittableRandom(5);
        int n = 3, t = 7, d = 20, chunks = 6;
        Tensor x = Refs.randn(r, 1f, n, t, d), y = Refs.randn(r, 1f, n, t, d), mod = Refs.randn(r, 1f, n, chunks * d);
        Tensor ref = TransformerOps.gatedResidual(x, y, mod, chunks, 5, false);
        FloatArray xa = fa(x);
        runner().gatedResidual(xa, fa(y), fa(mod), n * t, t, d, chunks, 5);
        Refs.assertClose("gatedResidual on " + runner().describe(), Host.get(xa, n * t * d), ref.data(), 1e-6, 1e-6);
    }

    @Test
    void geluAndSiluMatchTheEngine() {
        SplittableRandom r = new SplittableRandom(6);
        Tensor x = Refs.randn(r, 4f, 1000);
        x.data()[0] = 60f;       // 2u far beyond exp's range: must stay finite (= x)
        x.data()[1] = -60f;
        Tensor g = TransformerOps.geluTanh(x), s = TransformerOps.silu(x);
        FloatArray xa = fa(x), sa = new FloatArray(1000);
        runner().silu(fa(x), sa, 1000);
        runner().gelu(xa, 1000);
        Refs.assertClose("gelu on " + runner().describe(), Host.get(xa, 1000), g.data(), 1e-5, 1e-6);
        Refs.assertClose("silu on " + runner().describe(), Host.get(sa, 1000), s.data(), 1e-5, 1e-6);
        assertEquals(60f, xa.get(0), 1e-5f);
    }

    @Test
    void attentionMatchesTheEngine() {
        SplittableRandom r = new SplittableRandom(7);
        for (int[] dims : new int[][] {{2, 25, 2, 12}, {1, 70, 1, 8}}) {
            int b = dims[0], t = dims[1], h = dims[2], hd = dims[3], c = h * hd;
            Tensor qkv = Refs.randn(r, 1f, b, t, 3 * c);
            float scale = (float) Math.pow(hd, -0.5);
            Tensor ref = TransformerOps.attentionFromQkv(qkv, h, scale);
            FloatArray out = new FloatArray(b * t * c);
            runner().attention(fa(qkv), out, b, t, h, hd, scale);
            Refs.assertClose("attention " + t + " tokens on " + runner().describe(), Host.get(out, b * t * c), ref.data(), 1e-5, 1e-5);
        }
    }

    @Test
    void quantizedConvolutionAsIm2colGemmMatchesTheEngine() {
        SplittableRandom r = new SplittableRandom(8);
        int n = 2, c = 3, h = 9, w = 7, co = 16, k = 3, pad = 1, s = 2;
        int oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1, rows = n * oh * ow, kk = c * k * k;
        Tensor x = Refs.randn(r, 1f, n, c, h, w), wt = Refs.randn(r, 0.3f, co, c, k, k), b = Refs.randn(r, 0.2f, co);
        float step = 0.02f;
        QuantizedTensor qt = Refs.quantizeWeight(wt, IntFormat.symmetric(8), Granularity.CHANNEL);
        // static per-tensor activations: quantizing the im2col rows equals quantizing x (padding zeros stay zero)
        Tensor xHat = Quantizer.withParams(IntFormat.symmetric(8), Granularity.TENSOR, Layout.ACTIVATION, QuantParams.of(step)).fakeQuant(x);
        Tensor ref = ConvOps.conv2d(xHat, qt.dequantize(), b, s, pad);
        PackedLinear l = PackedLinear.quantized("conv", qt, b, PackedLinear.ActMode.STATIC_TENSOR, IntFormat.symmetric(8), step);
        FloatArray cols = new FloatArray(rows * kk), y = new FloatArray(rows * co), out = new FloatArray(n * co * oh * ow);
        runner().im2col(fa(x), cols, n, c, h, w, k, k, pad, s, oh, ow);
        runner().linear(l, cols, y, rows, new Int8Array(rows * kk), new FloatArray(rows));
        runner().rowsToNchw(y, out, n, co, oh, ow);
        assertArrayEquals(new int[] {n, co, oh, ow}, ref.shape());
        Refs.assertClose("int8 conv on " + runner().describe(), Host.get(out, ref.size()), ref.data(), 1e-5, 1e-4);
    }

    // ------------------------------------------------------------------ blocks and the whole denoiser

    static DiT smallDiT(long seed) {
        return smallDiTOf(new DiTConfig(8, 2, 2, 32, 2, 2, 4.0, 0.1, 3, true), seed);
    }

    /** A DiT with seeded random weights scaled 0.8 / sqrt(fan-in) (adaLN included, so every block does work). */
    static DiT smallDiTOf(DiTConfig cfg, long seed) {
        DiT m = new DiT(cfg);
        SplittableRandom r = new SplittableRandom(seed);
        for (Layer l : m.layers().all()) {
            for (String p : List.of("weight", "bias")) {
                Tensor t = l.param(p);
                if (t == null) continue;
                Tensor v = Refs.randn(r, p.equals("bias") ? 0.05f : (float) (0.8 / Math.sqrt(t.size() / t.dim(0))), t.shape());
                System.arraycopy(v.data(), 0, t.data(), 0, t.size());
            }
        }
        return m;
    }

    /** Block weights and inputs of a format family; probes (attention internals) stay FP. */
    static QuantizedModel quantize(DiT m, TensorSpec w, TensorSpec in) {
        List<LayerOverride> ov = new ArrayList<>();
        for (String p : List.of("*.attn.q", "*.attn.k", "*.attn.v", "*.attn.softmax")) ov.add(LayerOverride.fullPrecision(p));
        ov.add(new LayerOverride("x_embedder.*", SpecPatch.OFF, SpecPatch.OFF));
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(w, in), ov);
        CalibratedParams cp = WeightCalibrator.calibrate(m, plan);
        return QuantizedModel.attach(m, plan, cp);
    }

    static List<TensorSpec[]> blockPlans() {
        TensorSpec dyn8 = TensorSpec.input(IntFormat.symmetric(8), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC);
        return List.of(
                new TensorSpec[] {TensorSpec.weight(IntFormat.symmetric(8), Granularity.CHANNEL, RangeSpec.MINMAX), dyn8},
                new TensorSpec[] {TensorSpec.weight(IntFormat.asymmetric(4), Granularity.group(16), RangeSpec.MINMAX), dyn8},
                new TensorSpec[] {TensorSpec.weight(BlockFormat.NVFP4, Granularity.block(16), RangeSpec.MINMAX), TensorSpec.OFF});
    }

    /** The block / denoiser criterion of the class comment; dynamic: whether activations are quantized dynamically. */
    static void assertCloseToReference(String what, float[] got, float[] want, boolean dynamic) {
        double range = 0, se = 0, sr = 0;
        for (int i = 0; i < want.length; i++) {
            range = Math.max(range, Math.abs(want[i]));
            double e = got[i] - want[i];
            se += e * e;
            sr += (double) want[i] * want[i];
        }
        Refs.assertClose(what, got, want, 0, (dynamic ? 1e-2 : 1e-4) * range + 1e-6);
        if (dynamic) {
            double rel = Math.sqrt(se / Math.max(sr, 1e-30));
            assertTrue(rel <= 5e-3, what + ": RMS error " + rel + " of the reference's RMS, allowed 5e-3");
        }
    }

    @Test
    void ditBlockMatchesTheFakeQuantizedEngineBlock() {
        for (TensorSpec[] p : chosen(blockPlanChoice())) {
            DiT m = smallDiT(11);
            QuantizedModel q = p == null ? null : quantize(m, p[0], p[1]);
            String what = (p == null ? "fp32" : p[0] + " / " + p[1]) + " block on " + runner().describe();
            SplittableRandom r = new SplittableRandom(12);
            int n = 2, t = m.config().tokens(), d = m.config().hiddenSize();
            Tensor x = Refs.randn(r, 1f, n, t, d), c = Refs.randn(r, 1f, n, d);
            ForwardContext ctx = new ForwardContext(new float[] {10f, 10f}, new int[] {0, 1});
            Tensor ref = m.block(1, x, c, ctx);
            List<PackedLinear> pl = new ArrayList<>();
            for (String name : List.of("adaLN_modulation.1", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"))
                pl.add(TornadoDiT.pack(m, q, "blocks.1." + name));
            DitBlock b = new DitBlock("tblock", n, t, d, m.config().numHeads(), 1e-6f, pl.get(0), pl.get(1), pl.get(2), pl.get(3), pl.get(4),
                    fa(x), fa(TransformerOps.silu(c)));
            runner().block(b);
            assertCloseToReference(what, Host.get(b.x(), n * t * d), ref.data(), p != null && p[1].enabled());
            if (q != null) q.detach();
        }
    }

    @Test
    void denoiserMatchesTheFakeQuantizedModel() throws Exception {
        for (TensorSpec[] p : chosen(denoiserPlanChoice())) {
            DiT m = smallDiT(21);
            QuantizedModel q = p == null ? null : quantize(m, p[0], p[1]);
            String what = (p == null ? "fp32" : p[0] + " / " + p[1]) + " denoiser on " + runner().describe();
            SplittableRandom r = new SplittableRandom(22);
            Tensor x = Refs.randn(r, 1f, 3, 2, 8, 8);
            float[] t = {999f, 500f, 3f};
            int[] y = {0, 2, 3};
            Tensor ref = m.forward(x, t, y);
            Denoiser dn = runner().dit(m, q);
            try {
                Tensor got = dn.forward(x, t, y);
                assertArrayEquals(ref.shape(), got.shape());
                assertCloseToReference(what, got.data(), ref.data(), p != null && p[1].enabled());
                Tensor again = dn.forward(x, t, y);
                assertArrayEquals(got.data(), again.data(), 0f, what + ": a second call with the same inputs");
            } finally {
                if (dn instanceof AutoCloseable ac) ac.close();
                if (q != null) q.detach();
            }
        }
    }
}
