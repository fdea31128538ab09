package io.diffquant.engine.tensor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ConvOps against direct loop definitions (independent of im2col) and against the Ops slow twins. */
class ConvOpsTest {
    private final Random rnd = new Random(42);

    @AfterEach void restoreBlas() { Backends.useBlas("native"); }

    private Tensor rand(int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) rnd.nextGaussian();
        return t;
    }

    /** Direct 7-loop convolution in double. */
    static Tensor directConv(Tensor x, Tensor w, Tensor b, int stride, int pad) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3), o = w.dim(0), k = w.dim(2);
        int ho = (h + 2 * pad - k) / stride + 1, wo = (wd + 2 * pad - k) / stride + 1;
        Tensor y = Tensor.zeros(n, o, ho, wo);
        for (int i = 0; i < n; i++) for (int oc = 0; oc < o; oc++) for (int oy = 0; oy < ho; oy++) for (int ox = 0; ox < wo; ox++) {
            double s = b == null ? 0 : b.data()[oc];
            for (int ci = 0; ci < c; ci++) for (int ki = 0; ki < k; ki++) for (int kj = 0; kj < k; kj++) {
                int iy = oy * stride - pad + ki, ix = ox * stride - pad + kj;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += (double) x.get(i, ci, iy, ix) * w.get(oc, ci, ki, kj);
            }
            y.set((float) s, i, oc, oy, ox);
        }
        return y;
    }

    static float maxAbsDiff(Tensor a, Tensor b) {
        assertArrayEquals(a.shape(), b.shape());
        float m = 0;
        for (int i = 0; i < a.size(); i++) m = Math.max(m, Math.abs(a.data()[i] - b.data()[i]));
        return m;
    }

    @Test void convMatchesDirectLoopsForManyGeometries() {
        // {n, c, h, w, o, k, stride, pad}: same 3x3, 1x1, strided, padding 0, wide kernels, images larger than a tile
        int[][] cases = {{2, 3, 8, 8, 5, 3, 1, 1}, {3, 4, 5, 7, 6, 3, 1, 1}, {2, 6, 8, 8, 4, 1, 1, 0}, {2, 4, 9, 9, 3, 3, 2, 1},
                {2, 4, 9, 8, 3, 3, 2, 0}, {1, 2, 6, 6, 2, 5, 1, 2}, {1, 3, 4, 4, 2, 3, 1, 0}, {1, 2, 70, 64, 3, 3, 1, 1},
                {40, 2, 4, 4, 3, 3, 1, 1}, {2, 3, 2, 2, 2, 3, 1, 1}, {1, 2, 3, 1, 2, 3, 1, 1}, {2, 2, 5, 5, 2, 2, 2, 0},
                {1, 2, 6, 6, 2, 3, 1, 2}, {5, 20, 16, 16, 24, 3, 1, 1}, {3, 17, 32, 32, 16, 3, 1, 1}, {3, 9, 40, 33, 5, 1, 1, 0}};
        for (String blas : new String[] {"native", "java"}) {
            Backends.useBlas(blas);
            for (int[] cs : cases) {
                Tensor x = rand(cs[0], cs[1], cs[2], cs[3]), w = rand(cs[4], cs[1], cs[5], cs[5]), b = rand(cs[4]);
                Tensor ref = directConv(x, w, b, cs[6], cs[7]);
                Tensor got = ConvOps.conv2d(x, w, b, cs[6], cs[7]);
                assertTrue(maxAbsDiff(got, ref) < 2e-4f, blas + " case " + java.util.Arrays.toString(cs) + ": " + maxAbsDiff(got, ref));
                Tensor nob = ConvOps.conv2d(x, w, null, cs[6], cs[7]);
                Tensor refNob = directConv(x, w, null, cs[6], cs[7]);
                assertTrue(maxAbsDiff(nob, refNob) < 2e-4f, blas + " no-bias case " + java.util.Arrays.toString(cs));
            }
        }
    }

    @Test void convIsTheSameOnOneAndTwoThreads() {
        int before = Parallel.threads();
        try {
            Tensor x = rand(6, 24, 16, 16), w = rand(20, 24, 3, 3), b = rand(20);
            Parallel.setThreads(1);
            Tensor one = ConvOps.conv2d(x, w, b, 1, 1);
            Parallel.setThreads(2);
            Tensor two = ConvOps.conv2d(x, w, b, 1, 1);
            assertTrue(maxAbsDiff(one, two) < 1e-5f, "1 vs 2 threads: " + maxAbsDiff(one, two));
            assertTrue(maxAbsDiff(two, directConv(x, w, b, 1, 1)) < 2e-4f);
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test void upsampleConvEqualsConvOfTheUpsampledImage() {
        int before = Parallel.threads();
        try {
            for (int threads : new int[] {1, 2}) {
                Parallel.setThreads(threads);
                for (int[] cs : new int[][] {{2, 5, 4, 6, 7}, {9, 3, 8, 8, 4}, {1, 2, 1, 1, 3}, {3, 4, 5, 3, 2}}) {
                    Tensor x = rand(cs[0], cs[1], cs[2], cs[3]), w = rand(cs[4], cs[1], 3, 3), b = rand(cs[4]);
                    Tensor ref = directConv(Ops.upsampleNearest2x(x), w, b, 1, 1);
                    Tensor got = ConvOps.upsample2xConv3x3(x, w, b);
                    assertTrue(maxAbsDiff(got, ref) < 1e-4f, java.util.Arrays.toString(cs) + ": " + maxAbsDiff(got, ref));
                    assertTrue(maxAbsDiff(ConvOps.upsample2xConv3x3(x, w, null), directConv(Ops.upsampleNearest2x(x), w, null, 1, 1)) < 1e-4f);
                }
            }
        } finally {
            Parallel.setThreads(before);
        }
        assertThrows(IllegalArgumentException.class, () -> ConvOps.upsample2xConv3x3(rand(1, 2, 3, 3), rand(2, 2, 1, 1), null));
    }

    @Test void convRejectsBadShapes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ConvOps.conv2d(rand(1, 3, 4, 4), rand(2, 4, 3, 3), null, 1, 1));
        assertTrue(e.getMessage().contains("3 channels"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ConvOps.conv2d(rand(1, 3, 2, 2), rand(2, 3, 5, 5), null, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> ConvOps.conv2d(rand(1, 3, 4, 4), rand(2, 3, 3, 3), rand(3), 1, 1));
    }

    @Test void padMatchesDefinition() {
        Tensor x = rand(2, 3, 4, 5);
        Tensor y = ConvOps.pad(x, 0, 1, 2, 1);
        assertArrayEquals(new int[] {2, 3, 5, 8}, y.shape());
        for (int i = 0; i < 2; i++) for (int c = 0; c < 3; c++) for (int r = 0; r < 5; r++) for (int q = 0; q < 8; q++) {
            float want = r < 4 && q >= 2 && q < 7 ? x.get(i, c, r, q - 2) : 0f;
            assertEquals(want, y.get(i, c, r, q));
        }
    }

    @Test void groupNormActMatchesOpsComposition() {
        Tensor x = rand(3, 12, 5, 7), g = rand(12), b = rand(12), ss = rand(3, 24);
        for (int i = 0; i < x.size(); i++) x.data()[i] = x.data()[i] * 3f + 2f; // non-zero mean, larger variance
        Tensor ref = Ops.groupNorm(x, 4, g, b, 1e-5f);
        assertTrue(maxAbsDiff(ConvOps.groupNormAct(x, 4, g, b, 1e-5f, null, false), ref) < 1e-5f);
        assertTrue(maxAbsDiff(ConvOps.groupNormAct(x, 4, g, b, 1e-5f, null, true), Ops.silu(ref)) < 1e-5f);
        Tensor refSs = Ops.silu(ConvOps.scaleShift(ref, ss));
        assertTrue(maxAbsDiff(ConvOps.groupNormAct(x, 4, g, b, 1e-5f, ss, true), refSs) < 1e-5f);
        // scaleShift itself against its definition
        Tensor s2 = ConvOps.scaleShift(ref, ss);
        assertEquals(ref.get(1, 5, 2, 3) * (1 + ss.get(1, 5)) + ss.get(1, 17), s2.get(1, 5, 2, 3), 1e-6f);
        assertThrows(IllegalArgumentException.class, () -> ConvOps.groupNormAct(x, 5, g, b, 1e-5f, null, true));
    }

    @Test void groupNormStatisticsAreExactOnAKnownGroup() {
        // one group holding 0..7: mean 3.5, biased variance 5.25
        float[] v = new float[8];
        for (int i = 0; i < 8; i++) v[i] = i;
        Tensor y = ConvOps.groupNormAct(Tensor.of(v, 1, 2, 2, 2), 1, null, null, 0f, null, false);
        for (int i = 0; i < 8; i++) assertEquals((i - 3.5) / Math.sqrt(5.25), y.data()[i], 1e-6);
    }

    @Test void siluSoftmaxAndResidualMatchScalarDefinitions() {
        Tensor x = rand(7, 37);
        x.data()[3] = -100f;
        x.data()[4] = 90f;
        Tensor s = ConvOps.silu(x);
        for (int i = 0; i < x.size(); i++) assertEquals(Ops.silu(x.data()[i]), s.data()[i], 1e-6f * (1 + Math.abs(x.data()[i])));
        assertTrue(maxAbsDiff(ConvOps.softmax(x), Ops.softmax(x)) < 1e-6f);
        Tensor a = rand(3, 33), b = rand(3, 33), a2 = a.copy();
        ConvOps.residualAddInPlace(a2, b, 2f);
        for (int i = 0; i < a.size(); i++) assertEquals((a.data()[i] + b.data()[i]) / 2f, a2.data()[i]);
    }

    @Test void transposeLast2IsATranspose() {
        Tensor x = rand(2, 45, 70);
        Tensor y = ConvOps.transposeLast2(x);
        assertArrayEquals(new int[] {2, 70, 45}, y.shape());
        for (int b = 0; b < 2; b++) for (int i = 0; i < 45; i++) for (int j = 0; j < 70; j++) assertEquals(x.get(b, i, j), y.get(b, j, i));
    }

    /** softmax(q_h k_h^T * scale) v_h per head, in double. */
    static Tensor directAttention(Tensor q, Tensor k, Tensor v, int heads, float scale) {
        int n = q.dim(0), t = q.dim(1), s = k.dim(1), inner = q.dim(2), d = inner / heads;
        Tensor o = Tensor.zeros(n, t, inner);
        for (int i = 0; i < n; i++) for (int h = 0; h < heads; h++) for (int a = 0; a < t; a++) {
            double[] p = new double[s];
            double mx = Double.NEGATIVE_INFINITY, sum = 0;
            for (int b = 0; b < s; b++) {
                double dot = 0;
                for (int e = 0; e < d; e++) dot += (double) q.get(i, a, h * d + e) * k.get(i, b, h * d + e);
                p[b] = dot * scale;
                mx = Math.max(mx, p[b]);
            }
            for (int b = 0; b < s; b++) { p[b] = Math.exp(p[b] - mx); sum += p[b]; }
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (int b = 0; b < s; b++) acc += p[b] / sum * v.get(i, b, h * d + e);
                o.set((float) acc, i, a, h * d + e);
            }
        }
        return o;
    }

    @Test void attentionFastAndExplicitMatchDefinition() {
        for (String blas : new String[] {"native", "java"}) {
            Backends.useBlas(blas);
            for (int heads : new int[] {1, 3}) {
                Tensor q = rand(2, 10, 12), k = rand(2, 10, 12), v = rand(2, 10, 12);
                float scale = (float) Math.pow(12 / heads, -0.5);
                Tensor ref = directAttention(q, k, v, heads, scale);
                Tensor fast = ConvOps.multiHeadAttention(q, k, v, heads, scale);
                Tensor p = ConvOps.softmax(ConvOps.attentionScores(q, k, heads, scale));
                assertArrayEquals(new int[] {2, heads, 10, 10}, p.shape());
                Tensor explicit = ConvOps.attentionValues(p, v, heads);
                assertTrue(maxAbsDiff(fast, ref) < 1e-5f, blas + " fast, heads " + heads + ": " + maxAbsDiff(fast, ref));
                assertTrue(maxAbsDiff(explicit, ref) < 1e-5f, blas + " explicit, heads " + heads);
            }
        }
    }

    @Test void fourierEmbeddingMatchesDefinitionAndRejectsNonPositive() {
        Tensor w = Tensor.of(new float[] {0.5f, -2f, 3f}, 3);
        Tensor e = ConvOps.fourierEmbedding(new float[] {0.25f, 7f}, w);
        assertArrayEquals(new int[] {2, 6}, e.shape());
        double p = Math.log(7) * -2 * 2 * Math.PI;
        assertEquals(Math.sin(p), e.get(1, 1), 1e-5);
        assertEquals(Math.cos(p), e.get(1, 4), 1e-5);
        assertThrows(IllegalArgumentException.class, () -> ConvOps.fourierEmbedding(new float[] {0f}, w));
    }
}
