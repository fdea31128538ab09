package io.diffquant.kernels.tornado;

import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The kernel suite with the tuned KernelContext kernels on TornadoVM's default device, plus every tuned kernel against its
 * loop twin run on the plain JVM with the same inputs: activation codes equal, GEMMs within 1e-6 of sum |x||w| (the same
 * exact integer dots and the same group order; only FMA contraction may differ), row kernels within 1e-5.
 */
class TunedKernelsTornadoTest extends KernelContract {
    private final KernelRunner tuned = new TornadoRunner(true);
    private final KernelRunner twin = new KernelRunner.Jvm();

    @BeforeAll
    static void needTornado() {
        String why = TornadoRunner.unavailableReason();
        Assumptions.assumeTrue(why == null, why);
    }

    @Override KernelRunner runner() { return tuned; }

    /** W8A8 (int8 per channel, dynamic per-token int8) blocks; W4A8 denoiser with chained block graphs. */
    @Override List<Integer> blockPlanChoice() { return List.of(0); }

    @Override List<Integer> denoiserPlanChoice() { return List.of(1); }

    @Test
    void tunedQuantizationEqualsItsLoopTwin() {
        Tensor x = Refs.randn(new SplittableRandom(31), 2f, 37, 300);
        Int8Array a = new Int8Array(x.size()), b = new Int8Array(x.size());
        FloatArray sa = new FloatArray(37), sb = new FloatArray(37);
        tuned.quantizePerToken(fa(x), a, sa, 37, 300, 127);
        twin.quantizePerToken(fa(x), b, sb, 37, 300, 127);
        assertArrayEquals(Host.get(b, x.size()), Host.get(a, x.size()), "codes");
        assertArrayEquals(Host.get(sb, 37), Host.get(sa, 37), 0f, "steps");
    }

    @Test
    void tunedGemmsMatchTheirLoopTwins() {
        SplittableRandom r = new SplittableRandom(32);
        int rows = 50, in = 192, out = 70;
        Tensor w = Refs.randn(r, 0.1f, out, in), bias = Refs.randn(r, 0.1f, out), x = Refs.randn(r, 1f, rows, in);
        PackedLinear[] layers = {
                PackedLinear.fp32("f32", w, bias),
                PackedLinear.quantized("w8", Refs.quantizeWeight(w, IntFormat.asymmetric(8), Granularity.group(64)), bias,
                        PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f),
                PackedLinear.quantized("w4", Refs.quantizeWeight(w, IntFormat.asymmetric(4), Granularity.group(32)), bias,
                        PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f),
                PackedLinear.quantized("nvfp4", Refs.quantizeWeight(w, BlockFormat.NVFP4, Granularity.block(16)), bias,
                        PackedLinear.ActMode.NONE, null, 0f)};
        for (PackedLinear l : layers) {
            FloatArray ya = new FloatArray(rows * out), yb = new FloatArray(rows * out);
            tuned.linear(l, fa(x), ya, rows, new Int8Array(rows * in), new FloatArray(rows));
            twin.linear(l, fa(x), yb, rows, new Int8Array(rows * in), new FloatArray(rows));
            QuantizedTensor none = null;
            double[] mag = new double[rows * out];
            float[] xd = x.data(), wd = w.data();
            for (int i = 0; i < rows; i++) for (int o = 0; o < out; o++) {
                double m = Math.abs(bias.data()[o]);
                for (int k = 0; k < in; k++) m += Math.abs((double) xd[i * in + k] * wd[o * in + k]);
                mag[i * out + o] = 1.5 * m;   // the quantized operands are within a few percent of x, w
            }
            Refs.assertClose(l.name() + " tuned vs loop twin", Host.get(ya, rows * out), Refs.toDouble(Host.get(yb, rows * out)), mag, 1e-6, 1e-7);
        }
    }

    @Test
    void tunedRowKernelsMatchTheirLoopTwins() {
        SplittableRandom r = new SplittableRandom(33);
        int n = 2, t = 49, d = 192, heads = 4, hd = 48;
        Tensor x = Refs.randn(r, 1f, n, t, d), mod = Refs.randn(r, 0.3f, n, 6 * d), qkv = Refs.randn(r, 1f, n, t, 3 * d);
        FloatArray ya = new FloatArray(n * t * d), yb = new FloatArray(n * t * d);
        tuned.layerNormModulate(fa(x), fa(mod), ya, n * t, t, d, 6, 3, 4, 1e-6f);
        twin.layerNormModulate(fa(x), fa(mod), yb, n * t, t, d, 6, 3, 4, 1e-6f);
        Refs.assertClose("layerNormModulate tuned vs loop twin", Host.get(ya, n * t * d), Host.get(yb, n * t * d), 1e-5, 1e-5);
        FloatArray aa = new FloatArray(n * t * d), ab = new FloatArray(n * t * d);
        float scale = (float) Math.pow(hd, -0.5);
        tuned.attention(fa(qkv), aa, n, t, heads, hd, scale);
        twin.attention(fa(qkv), ab, n, t, heads, hd, scale);
        Refs.assertClose("attention tuned vs loop twin", Host.get(aa, n * t * d), Host.get(ab, n * t * d), 1e-5, 1e-5);
    }
}
