package io.diffquant.engine.tensor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Ops against direct double-precision references written independently of the fast paths. */
class OpsTest {
    private static Tensor rand(Random r, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) r.nextGaussian();
        return t;
    }

    static void assertClose(float[] expected, float[] actual, double atol, double rtol) {
        assertEquals(expected.length, actual.length, "length");
        for (int i = 0; i < expected.length; i++) {
            double tol = atol + rtol * Math.abs(expected[i]);
            if (Math.abs(expected[i] - actual[i]) > tol)
                fail("element " + i + ": expected " + expected[i] + " got " + actual[i] + " (tol " + tol + ")");
        }
    }

    @AfterEach void restore() { Backends.useBlas("native"); Parallel.setThreads(EngineSettings.threads()); }

    @Test void sgemmAllTransposesAndOffsetsMatchJavaTwinAndDoubleReference() {
        Random r = new Random(1);
        int m = 37, n = 29, k = 53;
        for (boolean ta : new boolean[] {false, true}) for (boolean tb : new boolean[] {false, true}) {
            int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
            int aOff = 7, bOff = 11, cOff = 13;
            float[] a = new float[aOff + (ta ? k : m) * lda], b = new float[bOff + (tb ? n : k) * ldb];
            for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
            for (int i = 0; i < b.length; i++) b[i] = (float) r.nextGaussian();
            float[] c0 = new float[cOff + m * ldc];
            for (int i = 0; i < c0.length; i++) c0[i] = (float) r.nextGaussian();
            float[] ref = c0.clone();
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    double bv = tb ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
                    s += av * bv;
                }
                ref[cOff + i * ldc + j] = (float) (0.5 * s + 0.25 * c0[cOff + i * ldc + j]);
            }
            for (Blas blas : new Blas[] {new DnnlBlas(), new JavaBlas()}) {
                float[] c = c0.clone();
                blas.sgemm(ta, tb, m, n, k, 0.5f, a, aOff, lda, b, bOff, ldb, 0.25f, c, cOff, ldc);
                assertClose(ref, c, 1e-4, 1e-4);
            }
        }
    }

    @Test void linearMatchesReference() {
        Random r = new Random(2);
        Tensor x = rand(r, 2, 5, 7), w = rand(r, 3, 7), b = rand(r, 3);
        Tensor y = Ops.linear(x, w, b);
        assertArrayEquals(new int[] {2, 5, 3}, y.shape());
        float[] ref = new float[30];
        for (int i = 0; i < 10; i++) for (int o = 0; o < 3; o++) {
            double s = b.data()[o];
            for (int p = 0; p < 7; p++) s += (double) x.data()[i * 7 + p] * w.data()[o * 7 + p];
            ref[i * 3 + o] = (float) s;
        }
        assertClose(ref, y.data(), 1e-5, 1e-5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.linear(x, rand(r, 3, 6), null));
        assertTrue(e.getMessage().contains("7 features"), e.getMessage());
    }

    private static float[] directConv(Tensor x, Tensor w, Tensor b, int stride, int pad) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), o = w.dim(0), k = w.dim(2);
        int ho = (h + 2 * pad - k) / stride + 1, wo = (wd + 2 * pad - k) / stride + 1;
        float[] out = new float[n * o * ho * wo];
        for (int i = 0; i < n; i++) for (int oc = 0; oc < o; oc++) for (int y = 0; y < ho; y++) for (int xx = 0; xx < wo; xx++) {
            double s = b == null ? 0 : b.data()[oc];
            for (int ci = 0; ci < c; ci++) for (int ky = 0; ky < k; ky++) for (int kx = 0; kx < k; kx++) {
                int iy = y * stride - pad + ky, ix = xx * stride - pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += (double) x.get(i, ci, iy, ix) * w.get(oc, ci, ky, kx);
            }
            out[((i * o + oc) * ho + y) * wo + xx] = (float) s;
        }
        return out;
    }

    @Test void conv2dMatchesDirectConvolutionForAllShapesUsed() {
        Random r = new Random(3);
        int[][] cases = {{2, 3, 8, 8, 5, 3, 1, 1}, {3, 4, 9, 9, 6, 3, 2, 1}, {2, 4, 6, 6, 7, 1, 1, 0}, {1, 2, 8, 8, 3, 2, 2, 0}, {1, 3, 5, 5, 2, 3, 1, 1}};
        for (int[] cs : cases) {
            Tensor x = rand(r, cs[0], cs[1], cs[2], cs[3]), w = rand(r, cs[4], cs[1], cs[5], cs[5]), b = rand(r, cs[4]);
            Tensor y = Ops.conv2d(x, w, b, cs[6], cs[7]);
            assertClose(directConv(x, w, b, cs[6], cs[7]), y.data(), 1e-4, 1e-4);
        }
    }

    @Test void groupNormAndLayerNormMatchDoubleReference() {
        Random r = new Random(4);
        Tensor x = rand(r, 2, 8, 3, 3), g = rand(r, 8), b = rand(r, 8);
        Tensor y = Ops.groupNorm(x, 4, g, b, 1e-5f);
        float[] ref = new float[x.size()];
        for (int n = 0; n < 2; n++) for (int gr = 0; gr < 4; gr++) {
            double s = 0, s2 = 0;
            for (int c = gr * 2; c < gr * 2 + 2; c++) for (int i = 0; i < 9; i++) s += x.data()[(n * 8 + c) * 9 + i];
            double mean = s / 18;
            for (int c = gr * 2; c < gr * 2 + 2; c++) for (int i = 0; i < 9; i++) { double d = x.data()[(n * 8 + c) * 9 + i] - mean; s2 += d * d; }
            double inv = 1 / Math.sqrt(s2 / 18 + 1e-5);
            for (int c = gr * 2; c < gr * 2 + 2; c++) for (int i = 0; i < 9; i++) {
                int idx = (n * 8 + c) * 9 + i;
                ref[idx] = (float) ((x.data()[idx] - mean) * inv * g.data()[c] + b.data()[c]);
            }
        }
        assertClose(ref, y.data(), 1e-5, 1e-5);

        Tensor z = rand(r, 3, 10);
        Tensor ln = Ops.layerNorm(z, null, null, 1e-6f);
        for (int row = 0; row < 3; row++) {
            double s = 0, s2 = 0;
            for (int j = 0; j < 10; j++) s += z.data()[row * 10 + j];
            double m = s / 10;
            for (int j = 0; j < 10; j++) { double d = z.data()[row * 10 + j] - m; s2 += d * d; }
            for (int j = 0; j < 10; j++)
                assertEquals((z.data()[row * 10 + j] - m) / Math.sqrt(s2 / 10 + 1e-6), ln.data()[row * 10 + j], 1e-5);
        }
    }

    @Test void attentionMatchesNaiveSoftmaxAttention() {
        Random r = new Random(5);
        int b = 2, h = 3, t = 7, d = 4;
        Tensor q = rand(r, b, h, t, d), k = rand(r, b, h, t, d), v = rand(r, b, h, t, d);
        float scale = (float) (1 / Math.sqrt(d));
        Tensor o = Ops.attention(q, k, v, scale);
        float[] ref = new float[o.size()];
        for (int bh = 0; bh < b * h; bh++) for (int i = 0; i < t; i++) {
            double[] s = new double[t];
            double mx = -1e300, sum = 0;
            for (int j = 0; j < t; j++) {
                double acc = 0;
                for (int p = 0; p < d; p++) acc += (double) q.data()[(bh * t + i) * d + p] * k.data()[(bh * t + j) * d + p];
                s[j] = acc * scale;
                mx = Math.max(mx, s[j]);
            }
            for (int j = 0; j < t; j++) { s[j] = Math.exp(s[j] - mx); sum += s[j]; }
            for (int p = 0; p < d; p++) {
                double acc = 0;
                for (int j = 0; j < t; j++) acc += s[j] / sum * v.data()[(bh * t + j) * d + p];
                ref[(bh * t + i) * d + p] = (float) acc;
            }
        }
        assertClose(ref, o.data(), 1e-5, 1e-5);
    }

    @Test void activationsMatchClosedForms() {
        for (double v = -8; v <= 8; v += 0.37) {
            float f = (float) v;
            assertEquals(v / (1 + Math.exp(-v)), Ops.silu(f), 1e-6);
            double gt = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            assertEquals(gt, Ops.geluTanh(f), 2e-6);
        }
        // erf against known values
        assertEquals(0.8427007929497149, Ops.erf(1.0), 2e-7);
        assertEquals(-0.9953222650189527, Ops.erf(-2.0), 2e-7);
    }

    @Test void timestepEmbeddingFollowsDiTFormula() {
        float[] t = {0f, 17f, 999f};
        Tensor e = Ops.timestepEmbedding(t, 8, true, 0f, 10000);
        for (int i = 0; i < 3; i++) for (int j = 0; j < 4; j++) {
            double f = Math.exp(-Math.log(10000) * j / 4.0);
            assertEquals(Math.cos(t[i] * f), e.get(i, j), 2e-4);
            assertEquals(Math.sin(t[i] * f), e.get(i, 4 + j), 2e-4);
        }
    }

    @Test void permuteUpsampleConcatLayouts() {
        Tensor x = Tensor.zeros(2, 3, 4, 5);
        for (int i = 0; i < x.size(); i++) x.data()[i] = i;
        Tensor p = Ops.permute4(x, 0, 2, 1, 3);
        assertArrayEquals(new int[] {2, 4, 3, 5}, p.shape());
        assertEquals(x.get(1, 2, 3, 4), p.get(1, 3, 2, 4));
        assertEquals(x.get(0, 1, 2, 0), p.get(0, 2, 1, 0));
        Tensor u = Ops.upsampleNearest2x(x);
        assertEquals(x.get(1, 2, 1, 3), u.get(1, 2, 3, 7));
        Tensor c = Ops.concatChannels(x, Ops.scale(x, -1f));
        assertEquals(-x.get(1, 2, 3, 4), c.get(1, 5, 3, 4));
        assertEquals(x.get(1, 0, 0, 1), c.get(1, 0, 0, 1));
    }

    @Test void resultsDoNotDependOnThreadCount() {
        Random r = new Random(6);
        Tensor x = rand(r, 4, 32, 8, 8), w = rand(r, 16, 32, 3, 3), g = rand(r, 32);
        Parallel.setThreads(1);
        Tensor a1 = Ops.conv2d(x, w, null, 1, 1), n1 = Ops.groupNorm(x, 8, g, null, 1e-5f), s1 = Ops.softmax(x);
        Parallel.setThreads(2);
        Tensor a2 = Ops.conv2d(x, w, null, 1, 1), n2 = Ops.groupNorm(x, 8, g, null, 1e-5f), s2 = Ops.softmax(x);
        assertArrayEquals(a1.data(), a2.data());
        assertArrayEquals(n1.data(), n2.data());
        assertArrayEquals(s1.data(), s2.data());
    }

    @Test void tensorShapeErrorsAreClear() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[5], 2, 3));
        assertTrue(e.getMessage().contains("[2, 3]"));
        assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(2, 3).reshape(4, -1));
        assertArrayEquals(new int[] {3, 2}, Tensor.zeros(2, 3).reshape(-1, 2).shape());
    }
}
