package io.diffquant.engine.tensor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static io.diffquant.engine.tensor.GradCheckTest.check;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The native fused kernels (DnnlPrimitives, DnnlBlas.sgemmSegments, NativeFused) against double-precision references,
 * and the public ops that use them ({@link TransformerOps#mlpGeluTanh}, {@link TransformerOps#attentionFromQkv})
 * against their unfused twins.
 */
class NativeFusedTest {
    @AfterEach void restore() { Backends.useBlas("native"); Parallel.setThreads(EngineSettings.threads()); }

    private static Tensor rand(Random r, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
        return t;
    }

    private static void close(double expected, float actual, double atol, double rtol, String what) {
        if (!(Math.abs(expected - actual) <= atol + rtol * Math.abs(expected)))
            fail(what + ": expected " + expected + " got " + actual);
    }

    private static double gelu(double v) { return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))); }

    /** y = gelu(x w1^T + b1) w2^T + b2 in double. */
    private static double[] mlpRef(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2) {
        int d = x.dim(-1), h = w1.dim(0), o = w2.dim(0), m = x.size() / d;
        double[] y = new double[m * o], hid = new double[h];
        for (int r = 0; r < m; r++) {
            for (int j = 0; j < h; j++) {
                double s = b1 == null ? 0 : b1.data()[j];
                for (int k = 0; k < d; k++) s += (double) x.data()[r * d + k] * w1.data()[j * d + k];
                hid[j] = gelu(s);
            }
            for (int j = 0; j < o; j++) {
                double s = b2 == null ? 0 : b2.data()[j];
                for (int k = 0; k < h; k++) s += hid[k] * w2.data()[j * h + k];
                y[r * o + j] = s;
            }
        }
        return y;
    }

    @Test void fusedMlpMatchesTheDoubleReferenceWithAndWithoutBiases() {
        assumeTrue(NativeFused.available(), "oneDNN through FFM is not available here");
        Random r = new Random(1);
        // 2 x 70 rows x 300 hidden = 42000 hidden activations: above the fused threshold
        Tensor x = rand(r, 1, 2, 70, 24), w1 = rand(r, 0.3, 300, 24), b1 = rand(r, 0.5, 300), w2 = rand(r, 0.08, 20, 300),
                b2 = rand(r, 0.5, 20);
        for (boolean bias : new boolean[] {true, false}) {
            Tensor bb1 = bias ? b1 : null, bb2 = bias ? b2 : null;
            double[] ref = mlpRef(x, w1, bb1, w2, bb2);
            float[] direct = new float[ref.length];
            assertTrue(NativeFused.mlpGeluTanh(x.data(), 140, 24, w1.data(), bias ? b1.data() : null, 300, w2.data(),
                    bias ? b2.data() : null, 20, direct), "the native path ran");
            Tensor y = TransformerOps.mlpGeluTanh(x, w1, bb1, w2, bb2);
            assertArrayEquals(new int[] {2, 70, 20}, y.shape());
            for (int i = 0; i < ref.length; i++) {
                close(ref[i], direct[i], 2e-5, 2e-5, "native mlp " + i + " bias " + bias);
                close(ref[i], y.data()[i], 2e-5, 2e-5, "mlpGeluTanh " + i + " bias " + bias);
            }
            // the unfused ops (the path taken under a Tape or without oneDNN) agree to float rounding
            Tensor f = Ops.linear(x, w1, bb1);
            TransformerOps.geluTanhInPlace(f);
            Tensor u = Ops.linear(f, w2, bb2);
            for (int i = 0; i < ref.length; i++) close(u.data()[i], y.data()[i], 1e-5, 1e-5, "fused vs unfused " + i);
        }
        // one or two engine threads: the same values (rows are split, each row computed alike)
        Parallel.setThreads(1);
        Tensor one = TransformerOps.mlpGeluTanh(x, w1, b1, w2, b2);
        Parallel.setThreads(2);
        assertArrayEquals(one.data(), TransformerOps.mlpGeluTanh(x, w1, b1, w2, b2).data());
    }

    @Test void mlpUnderATapeIsRecordedAndDifferentiable() {
        Random r = new Random(2);
        // large enough for the fused path without a tape: with one, the recorded unfused ops must run
        Tensor x = rand(r, 1, 1, 130, 8), w1 = rand(r, 0.4, 256, 8), b1 = rand(r, 0.3, 256), w2 = rand(r, 0.1, 3, 256),
                b2 = rand(r, 0.3, 3);
        check("mlpGeluTanh", in -> TransformerOps.mlpGeluTanh(in[0], in[1], in[2], in[3], in[4]),
                new Tensor[] {x, w1, b1, w2, b2}, 1e-2, 0, 2, 4);
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.mlpGeluTanh(x, rand(r, 1, 256, 9), b1, w2, b2));
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.mlpGeluTanh(x, w1, rand(r, 1, 255), w2, b2));
    }

    @Test void nativeAttentionHeadMatchesTheDoubleReference() {
        assumeTrue(NativeFused.available(), "oneDNN through FFM is not available here");
        Random r = new Random(3);
        int b = 2, t = 67, heads = 3, d = 16, c = heads * d, c3 = 3 * c;
        Tensor qkv = rand(r, 1, b, t, c3);
        float scale = 0.3f;
        float[] out = new float[b * t * c];
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < heads; h++) {
                int base = bi * t * c3 + h * d;
                assertTrue(NativeFused.attentionHead(qkv.data(), base, base + c, base + 2 * c, c3, t, d, scale, out,
                        bi * t * c + h * d, c));
            }
        Tensor viaOp = TransformerOps.attentionFromQkv(qkv, heads, scale);
        Backends.useBlas("java");                 // the Java path of the same op (exp-based softmax)
        Tensor javaPath = TransformerOps.attentionFromQkv(qkv, heads, scale);
        float[] q = qkv.data();
        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < t; i++) {
                    double[] s = new double[t];
                    double mx = Double.NEGATIVE_INFINITY, z = 0;
                    for (int j = 0; j < t; j++) {
                        double dot = 0;
                        for (int e = 0; e < d; e++) dot += (double) q[(bi * t + i) * c3 + h * d + e] * q[(bi * t + j) * c3 + c + h * d + e];
                        s[j] = dot * scale;
                        mx = Math.max(mx, s[j]);
                    }
                    for (int j = 0; j < t; j++) z += (s[j] = Math.exp(s[j] - mx));
                    for (int e = 0; e < d; e++) {
                        double o = 0;
                        for (int j = 0; j < t; j++) o += s[j] / z * q[(bi * t + j) * c3 + 2 * c + h * d + e];
                        int at = (bi * t + i) * c + h * d + e;
                        close(o, out[at], 1e-5, 1e-4, "native head " + bi + "/" + h + " row " + i);
                        close(o, viaOp.data()[at], 1e-5, 1e-4, "attentionFromQkv " + at);
                        close(o, javaPath.data()[at], 1e-5, 1e-4, "java path " + at);
                    }
                }
    }

    @Test void softmaxPrimitiveHandlesHugeAndEqualScores() {
        assumeTrue(NativeFused.available(), "oneDNN through FFM is not available here");
        int rows = 3, cols = 5;
        float[][] in = {{1e20f, -1e20f, 0, 3, 1e20f}, {2, 2, 2, 2, 2}, {-50, -49, -100, -51, -48}};
        MemorySegment buf = Arena.ofAuto().allocate((long) rows * cols * Float.BYTES, 64);
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) buf.setAtIndex(ValueLayout.JAVA_FLOAT, (long) i * cols + j, in[i][j]);
        assertTrue(DnnlPrimitives.softmaxRows(buf, rows, cols));
        for (int i = 0; i < rows; i++) {
            double mx = Double.NEGATIVE_INFINITY, z = 0;
            for (float v : in[i]) mx = Math.max(mx, v);
            for (float v : in[i]) z += Math.exp(v - mx);
            for (int j = 0; j < cols; j++)
                close(Math.exp(in[i][j] - mx) / z, buf.getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * cols + j), 1e-7, 1e-6,
                        "softmax row " + i + " col " + j);
        }
        assertThrows(IllegalArgumentException.class, () -> DnnlPrimitives.softmaxRows(buf, rows, cols + 1));
        assertThrows(IllegalArgumentException.class,
                () -> DnnlPrimitives.geluTanh(MemorySegment.ofArray(new float[4]), 4), "heap buffers are refused");
    }

    @Test void geluPrimitiveMatchesTheClosedForm() {
        assumeTrue(NativeFused.available(), "oneDNN through FFM is not available here");
        int n = 20_001;
        MemorySegment buf = Arena.ofAuto().allocate((long) n * Float.BYTES, 64);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) buf.setAtIndex(ValueLayout.JAVA_FLOAT, i, x[i] = -12f + 24f * i / (n - 1));
        assertTrue(DnnlPrimitives.geluTanh(buf, n));
        for (int i = 0; i < n; i++) close(gelu(x[i]), buf.getAtIndex(ValueLayout.JAVA_FLOAT, i), 1e-6, 1e-5, "gelu(" + x[i] + ")");
    }

    @Test void segmentGemmMixesHeapAndNativeOperandsLikeTheJavaGemm() {
        assumeTrue(NativeFused.available(), "oneDNN through FFM is not available here");
        Random r = new Random(4);
        int m = 300, n = 37, k = 50;
        for (boolean ta : new boolean[] {false, true})
            for (boolean tb : new boolean[] {false, true}) {
                float[] a = rand(r, 1, m * k).data(), b = rand(r, 1, k * n).data(), c0 = rand(r, 1, m * n).data();
                int lda = ta ? m : k, ldb = tb ? k : n;
                float[] expect = c0.clone();
                new JavaBlas().sgemm(ta, tb, m, n, k, 0.5f, a, 0, lda, b, 0, ldb, 1f, expect, 0, n);
                MemorySegment an = Arena.ofAuto().allocate((long) a.length * Float.BYTES, 64);
                MemorySegment.copy(MemorySegment.ofArray(a), 0, an, 0, an.byteSize());
                float[] c = c0.clone();
                assertTrue(DnnlBlas.sgemmSegments(ta, tb, m, n, k, 0.5f, an, lda, MemorySegment.ofArray(b), ldb, 1f,
                        MemorySegment.ofArray(c), n));
                for (int i = 0; i < c.length; i++) close(expect[i], c[i], 1e-4, 1e-5, "ta " + ta + " tb " + tb + " at " + i);
            }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DnnlBlas.sgemmSegments(false, false,
                4, 4, 4, 1f, MemorySegment.ofArray(new float[15]), 4, MemorySegment.ofArray(new float[16]), 4, 0f,
                MemorySegment.ofArray(new float[16]), 4));
        assertTrue(e.getMessage().contains("matrix A"), e.getMessage());
    }

    @Test void linearWithBiasAddsTheBiasOnceAtAnyShape() {
        Random r = new Random(5);
        Tensor x = rand(r, 1, 3, 5, 7), w = rand(r, 1, 4, 7), b = rand(r, 1, 4);
        Tensor y = Ops.linear(x, w, b);
        for (int row = 0; row < 15; row++)
            for (int j = 0; j < 4; j++) {
                double s = b.data()[j];
                for (int k = 0; k < 7; k++) s += (double) x.data()[row * 7 + k] * w.data()[j * 7 + k];
                close(s, y.data()[row * 4 + j], 1e-5, 1e-5, "linear " + row + "," + j);
            }
        // no input features: the output is the bias in every row
        Tensor y0 = Ops.linear(Tensor.zeros(2, 0), Tensor.zeros(3, 0), Tensor.of(new float[] {1, 2, 3}, 3));
        assertArrayEquals(new float[] {1, 2, 3, 1, 2, 3}, y0.data());
    }
}
