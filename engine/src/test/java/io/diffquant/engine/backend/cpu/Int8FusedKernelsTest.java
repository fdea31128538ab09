package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused int8 kernels of the DiT block (MLP with GELU between the two int8 GEMMs, gated residual in the
 * dequantization) against the unfused ops they replace: Int8Linear.forward, TransformerOps.geluTanhInPlace and
 * TransformerOps.gatedResidual. They use the same float operations, so the tolerance is zero (bitwise equality).
 */
class Int8FusedKernelsTest {
    static Tensor rand(Random r, double scale, int... shape) {
        Tensor t = Tensor.zeros(shape);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) (r.nextGaussian() * scale);
        return t;
    }

    static Int8Linear linear(String name, Random r, int out, int in, boolean bias) {
        Tensor w = rand(r, 1.0 / Math.sqrt(in), out, in);
        var codes = Quantizer.dynamic(IntFormat.symmetric(8), Granularity.CHANNEL, Layout.WEIGHT).quantize(w);
        return Int8Linear.pack(name, codes, bias ? rand(r, 0.1, out) : null, IntFormat.symmetric(8));
    }

    @Test void geluTanhRowIsBitIdenticalToGeluTanhInPlace() {
        Random r = new Random(3);
        int n = 1300;                                   // more than one 512-element exp block, not a multiple of it
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian() * 4);
        float[] special = {0f, -0f, 1e-30f, -1e-30f, 9.5f, -9.5f, 20f, -20f, 60f, -60f, 1e4f, -1e4f};
        System.arraycopy(special, 0, x, 0, special.length);
        Tensor ref = Tensor.of(x.clone(), n);
        TransformerOps.geluTanhInPlace(ref);
        float[] y = new float[n];
        TransformerOps.geluTanhRow(x, y, n, new int[512]);
        assertArrayEquals(ref.data(), y);
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.geluTanhRow(x, x, n, new int[512]));
    }

    @Test void fusedMlpIsBitIdenticalToTheUnfusedInt8Ops() {
        Random r = new Random(5);
        int d = 48, hid = 192;
        for (boolean bias : new boolean[] {true, false}) {
            Int8Linear fc1 = linear("fc1", r, hid, d, bias), fc2 = linear("fc2", r, d, hid, bias);
            // 2 x 150 = 300 rows: three row blocks of Int8Linear.ROW_BLOCK (128), the last one partial
            Tensor x = rand(r, 1.5, 2, 150, d);
            for (float[] steps : new float[][] {{Float.NaN, Float.NaN}, {0.02f, 0.01f}, {Float.NaN, 0.004f}}) {
                Tensor f = fc1.forward(x, steps[0]);
                TransformerOps.geluTanhInPlace(f);
                Tensor want = fc2.forward(f, steps[1]);
                Tensor got = Int8Linear.mlpGeluTanh(fc1, fc2, x, steps[0], steps[1]);
                assertArrayEquals(want.shape(), got.shape());
                assertArrayEquals(want.data(), got.data(), "bias " + bias + ", steps " + steps[0] + ", " + steps[1]);
                assertTrue(got.allFinite());
            }
        }
    }

    @Test void gatedResidualInTheDequantizationIsBitIdentical() {
        Random r = new Random(7);
        int n = 3, t = 70, d = 40, hid = 96;
        Int8Linear proj = linear("proj", r, d, d, true), fc1 = linear("fc1", r, hid, d, true), fc2 = linear("fc2", r, d, hid, true);
        Tensor a = rand(r, 1.0, n, t, d), x = rand(r, 1.0, n, t, d), mod = rand(r, 0.5, n, 6 * d);
        float[] xBefore = x.data().clone();

        Tensor want = TransformerOps.gatedResidual(x, proj.forward(a, Float.NaN), mod, 6, 2, true);
        Tensor got = proj.forwardGatedResidual(a, Float.NaN, x, mod, 6, 2);
        assertArrayEquals(want.data(), got.data());

        Tensor h = rand(r, 1.0, n, t, d);
        Tensor wantMlp = TransformerOps.gatedResidual(x, Int8Linear.mlpGeluTanh(fc1, fc2, h, Float.NaN, 0.01f), mod, 6, 5, true);
        Tensor gotMlp = Int8Linear.mlpGeluTanhGatedResidual(fc1, fc2, h, Float.NaN, 0.01f, x, mod, 6, 5);
        assertArrayEquals(wantMlp.data(), gotMlp.data());
        assertArrayEquals(xBefore, x.data(), "the residual input is not modified");
    }

    @Test void exactHalfIntegerQuotientsRoundHalfToEven() {
        Random r = new Random(11);
        Int8Linear l = linear("l", r, 4, 8, false);
        // static step 0.25: x = (k + 1/2) * 0.25 has the exact quotient k + 1/2 (a float tie); 200 clamps to 127
        float[] x = {0.125f, 0.375f, 0.625f, -0.125f, -0.375f, -0.625f, 31.875f, 200f};
        byte[] codes = new byte[8];
        l.quantizeInto(Tensor.of(x, 1, 8), 0.25f, codes, new float[1]);
        assertArrayEquals(new byte[] {0, 2, 2, 0, -2, -2, 127, 127}, codes);
        // dynamic: absmax 12.7, step ~0.1; values whose float quotient may land on a half-integer: every code must be the
        // exactly rounded quotient (rint in double), as the fake quantization computes it
        float[] y = {12.7f, 0.05f, 0.15f, -0.15f, 0.25f, 0f, 0f, 0f};
        float[] st = new float[1];
        l.quantizeInto(Tensor.of(y, 1, 8), Float.NaN, codes, st);
        assertTrue(st[0] == (float) (12.7f / 127.0), "step " + st[0]);
        for (int i = 0; i < 8; i++) {
            double want = Math.rint(y[i] / (double) st[0]);
            assertTrue(codes[i] == (byte) want, "element " + i + ": code " + codes[i] + ", exact rounding " + want);
        }
    }

    @Test void badShapesNameTheLayer() {
        Random r = new Random(9);
        Int8Linear fc1 = linear("blocks.0.mlp.fc1", r, 32, 16, true), fc2 = linear("blocks.0.mlp.fc2", r, 16, 24, true);
        var e = assertThrows(IllegalArgumentException.class, () -> Int8Linear.mlpGeluTanh(fc1, fc2, rand(r, 1, 4, 16), Float.NaN, Float.NaN));
        assertTrue(e.getMessage().contains("blocks.0.mlp.fc1") && e.getMessage().contains("do not chain"), e.getMessage());
        Int8Linear proj = linear("blocks.0.attn.proj", r, 16, 16, true);
        var e2 = assertThrows(IllegalArgumentException.class, () -> proj.forwardGatedResidual(rand(r, 1, 2, 5, 16), Float.NaN,
                rand(r, 1, 2, 4, 16), rand(r, 1, 2, 96), 6, 2));
        assertTrue(e2.getMessage().contains("blocks.0.attn.proj") && e2.getMessage().contains("residual"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class, () -> proj.forwardGatedResidual(rand(r, 1, 2, 5, 16), Float.NaN,
                rand(r, 1, 2, 5, 16), rand(r, 1, 2, 80), 6, 2));
        assertTrue(e3.getMessage().contains("modulation"), e3.getMessage());
    }
}
