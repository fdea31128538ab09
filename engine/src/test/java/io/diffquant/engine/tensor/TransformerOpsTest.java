package io.diffquant.engine.tensor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** TransformerOps kernels against direct double-precision references. */
class TransformerOpsTest {
    private static Tensor rand(Random r, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
        return t;
    }

    private static void close(double expected, float actual, double atol, double rtol, String what) {
        if (Math.abs(expected - actual) > atol + rtol * Math.abs(expected))
            fail(what + ": expected " + expected + " got " + actual);
    }

    @AfterEach void restore() { Backends.useBlas("native"); Parallel.setThreads(EngineSettings.threads()); }

    @Test void expBlockIsAccurateOverTheUsedRange() {
        int n = 200_001;
        float[] ps = new float[n];
        for (int i = 0; i < n; i++) ps[i] = -87f + 175f * i / (n - 1);       // [-87, 88]
        float[] x = ps.clone();
        TransformerOps.expInPlace(ps, 0, n, 0f, new int[512]);
        for (int i = 0; i < n; i++) close(Math.exp(x[i]), ps[i], 0, 2.5e-7, "exp(" + x[i] + ")");
        float[] ex = {-1000f, -100f, -87.5f, 0f, 88f, 100f, 1e30f};
        float[] e = ex.clone();
        TransformerOps.expInPlace(e, 0, ex.length, 0f, new int[512]);
        assertTrue(e[0] >= 0 && e[0] < 1.2e-38f && e[1] < 1.2e-38f, "underflow clamps to tiny, never negative or NaN");
        assertEquals(1f, e[3]);
        assertTrue(Float.isFinite(e[5]) && Float.isFinite(e[6]) && e[6] > 1e38f, "overflow clamps to a finite value");
        float[] s = {7f, 1f, 2f, 3f};
        TransformerOps.expInPlace(s, 1, 2, 3f, new int[512]);
        assertEquals(7f, s[0]);
        assertEquals(3f, s[3]);
        close(Math.exp(-2), s[1], 0, 2.5e-7, "shifted, with offset");
    }

    @Test void geluTanhAndSiluMatchClosedForms() {
        Random r = new Random(1);
        Tensor x = rand(r, 4, 3, 1001);
        x.data()[0] = 0f;
        x.data()[1] = -30f;
        x.data()[2] = 30f;
        Tensor g = TransformerOps.geluTanh(x), s = TransformerOps.silu(x);
        Tensor inPlace = x.copy();
        TransformerOps.geluTanhInPlace(inPlace);
        assertArrayEquals(g.data(), inPlace.data());
        for (int i = 0; i < x.size(); i++) {
            double v = x.data()[i];
            double ref = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            close(ref, g.data()[i], 2e-7, 1e-6, "gelu(" + v + ")");
            close(v / (1 + Math.exp(-v)), s.data()[i], 1e-7, 1e-6, "silu(" + v + ")");
        }
        assertEquals(0f, g.data()[0]);
        assertEquals(0f, g.data()[1], 1e-12);
        assertEquals(30f, g.data()[2]);
    }

    @Test void softmaxMatchesReferenceIncludingLongRows() {
        Random r = new Random(2);
        for (int c : new int[] {1, 7, 256, 1300}) {
            Tensor x = rand(r, 5, 9, c);
            Tensor y = x.copy();
            TransformerOps.softmaxInPlace(y);
            for (int row = 0; row < 9; row++) {
                double mx = Double.NEGATIVE_INFINITY, z = 0;
                for (int j = 0; j < c; j++) mx = Math.max(mx, x.data()[row * c + j]);
                for (int j = 0; j < c; j++) z += Math.exp(x.data()[row * c + j] - mx);
                for (int j = 0; j < c; j++)
                    close(Math.exp(x.data()[row * c + j] - mx) / z, y.data()[row * c + j], 1e-9, 2e-6, "softmax c=" + c);
            }
        }
    }

    @Test void layerNormModulateAndGatedResidualMatchReference() {
        Random r = new Random(3);
        int n = 3, t = 5, d = 37, chunks = 6;
        Tensor x = rand(r, 2, n, t, d), mod = rand(r, 0.5, n, chunks * d), y = rand(r, 1, n, t, d);
        for (int i = 0; i < d; i++) x.data()[i] += 100f;           // a large mean: the two-pass variance copes
        Tensor ln = TransformerOps.layerNormModulate(x, mod, chunks, 3, 4, 1e-6f);
        Tensor plainLn = Ops.layerNorm(x, null, null, 1e-6f);
        Tensor mo = TransformerOps.modulate(plainLn, mod, chunks, 3, 4);
        Tensor gr = TransformerOps.gatedResidual(x, y, mod, chunks, 5, false);
        Tensor yCopy = y.copy();
        Tensor gr2 = TransformerOps.gatedResidual(x, yCopy, mod, chunks, 5, true);
        assertSame(yCopy, gr2);
        assertArrayEquals(gr.data(), gr2.data());
        for (int b = 0; b < n; b++) for (int tok = 0; tok < t; tok++) {
            double mean = 0, var = 0;
            for (int j = 0; j < d; j++) mean += x.get(b, tok, j) / (double) d;
            for (int j = 0; j < d; j++) var += Math.pow(x.get(b, tok, j) - mean, 2) / d;
            for (int j = 0; j < d; j++) {
                double nrm = (x.get(b, tok, j) - mean) / Math.sqrt(var + 1e-6);
                double ref = nrm * (1 + mod.get(b, 4 * d + j)) + mod.get(b, 3 * d + j);
                close(ref, ln.get(b, tok, j), 1e-4, 1e-4, "layerNormModulate");
                close(ref, mo.get(b, tok, j), 1e-4, 1e-4, "modulate(layerNorm)");
                close(x.get(b, tok, j) + (double) mod.get(b, 5 * d + j) * y.get(b, tok, j), gr.get(b, tok, j), 1e-5, 1e-6, "gated");
            }
        }
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.layerNormModulate(x, Tensor.zeros(n, 5 * d), 6, 0, 1, 1e-6f));
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.gatedResidual(x, Tensor.zeros(n, t, d + 1), mod, 6, 2, false));
    }

    @Test void attentionFromQkvMatchesNaiveAttentionAndTheExplicitPieces() {
        Random r = new Random(4);
        int b = 2, t = 19, heads = 3, hd = 8, c = heads * hd;
        Tensor qkv = rand(r, 1, b, t, 3 * c);
        float scale = (float) Math.pow(hd, -0.5);
        Tensor fused = TransformerOps.attentionFromQkv(qkv, heads, scale);
        Tensor[] s = TransformerOps.splitQkv(qkv, heads);
        Tensor p = TransformerOps.attentionScores(s[0], s[1], scale);
        TransformerOps.softmaxInPlace(p);
        Tensor explicit = TransformerOps.attentionApply(p, s[2]);
        assertArrayEquals(new int[] {b, t, c}, fused.shape());
        for (int bi = 0; bi < b; bi++) for (int h = 0; h < heads; h++) for (int i = 0; i < t; i++) {
            double[] w = new double[t];
            double z = 0;
            for (int j = 0; j < t; j++) {
                double dot = 0;
                for (int e = 0; e < hd; e++) dot += (double) qkv.get(bi, i, h * hd + e) * qkv.get(bi, j, c + h * hd + e);
                w[j] = Math.exp(dot * scale);
                z += w[j];
            }
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int j = 0; j < t; j++) o += w[j] / z * qkv.get(bi, j, 2 * c + h * hd + e);
                close(o, fused.get(bi, i, h * hd + e), 2e-6, 2e-5, "fused attention");
                close(o, explicit.get(bi, i, h * hd + e), 2e-6, 2e-5, "explicit attention");
            }
        }
    }

    /** Naive attention of one (batch, head) in double from a qkv [B, T, 3C] tensor. */
    private static double[] naiveAttentionRow(Tensor qkv, int bi, int h, int i, int hd, int c, double scale) {
        int t = qkv.dim(1);
        double[] w = new double[t];
        double mx = Double.NEGATIVE_INFINITY, z = 0;
        for (int j = 0; j < t; j++) {
            double dot = 0;
            for (int e = 0; e < hd; e++) dot += (double) qkv.get(bi, i, h * hd + e) * qkv.get(bi, j, c + h * hd + e);
            w[j] = dot * scale;
            mx = Math.max(mx, w[j]);
        }
        for (int j = 0; j < t; j++) { w[j] = Math.exp(w[j] - mx); z += w[j]; }
        double[] o = new double[hd];
        for (int e = 0; e < hd; e++) for (int j = 0; j < t; j++) o[e] += w[j] / z * qkv.get(bi, j, 2 * c + h * hd + e);
        return o;
    }

    /**
     * The fused attention shifts each softmax row by the bound |q| max|k| scale instead of the row maximum;
     * where that bound is far above the true maximum (q nearly orthogonal to a long k) it must redo the row.
     */
    @Test void fusedAttentionSurvivesALooseSoftmaxBound() {
        Random r = new Random(6);
        int t = 12, hd = 4, c = hd;
        Tensor qkv = rand(r, 1, 1, t, 3 * c);
        for (int j = 0; j < t; j++) {                                   // q along e0, k along e1 ...
            qkv.set(300f + j, 0, j, 0);
            qkv.set(0f, 0, j, 1);
            qkv.set(0.5f, 0, j, c);
            qkv.set(j == 3 ? 400f : 0f, 0, j, c + 1);                  // ... and one very long k: bound 1.2e5
        }
        Tensor fused = TransformerOps.attentionFromQkv(qkv, 1, 1f);
        for (int i = 0; i < t; i++) {
            double[] o = naiveAttentionRow(qkv, 0, 0, i, hd, c, 1.0);
            for (int e = 0; e < hd; e++) close(o[e], fused.get(0, i, e), 1e-5, 1e-4, "row " + i + " e " + e);
        }
        // huge but orthogonal q and k: finite scores, but the norm bound overflows: the exact maximum is used
        Tensor big = qkv.copy();
        for (int j = 0; j < t; j++) { big.set(1e20f, 0, j, 2); big.set(1e20f, 0, j, c + 3); big.set(0f, 0, j, c + 1); }
        Tensor fb = TransformerOps.attentionFromQkv(big, 1, 1f);
        for (int i = 0; i < t; i++) {
            double[] o = naiveAttentionRow(big, 0, 0, i, hd, c, 1.0);
            for (int e = 0; e < hd; e++) close(o[e], fb.get(0, i, e), 1e-5, 1e-4, "huge, row " + i + " e " + e);
        }
    }

    @Test void attentionIsTheSameWithOneOrTwoThreadsAndWithTheJavaGemm() {
        Random r = new Random(5);
        Tensor qkv = rand(r, 1, 3, 40, 3 * 32);
        Parallel.setThreads(1);
        Tensor one = TransformerOps.attentionFromQkv(qkv, 4, 0.35f);
        Tensor gelu1 = TransformerOps.geluTanh(qkv);
        Parallel.setThreads(2);
        Tensor two = TransformerOps.attentionFromQkv(qkv, 4, 0.35f);
        assertArrayEquals(one.data(), two.data());
        assertArrayEquals(gelu1.data(), TransformerOps.geluTanh(qkv).data());
        Backends.useBlas("java");
        Tensor java = TransformerOps.attentionFromQkv(qkv, 4, 0.35f);
        for (int i = 0; i < one.size(); i++) close(one.data()[i], java.data()[i], 1e-5, 1e-5, "java gemm");
    }

    @Test void patchTokensUnpatchifyAndGuidanceLayouts() {
        // conv output [N=1, D=2, 2, 3]: token (i, j) gets conv[:, i, j] + pos
        Tensor conv = Tensor.of(new float[] {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}, 1, 2, 2, 3);
        Tensor pos = Tensor.full(0.5f, 1, 6, 2);
        Tensor tok = TransformerOps.patchTokens(conv, pos);
        assertArrayEquals(new int[] {1, 6, 2}, tok.shape());
        assertEquals(4.5f, tok.get(0, 4, 0));
        assertEquals(14.5f, tok.get(0, 4, 1));
        // unpatchify: tokens [1, 4 (2x2 grid), p*p*c = 2*2*3]: feature (pi, qi, ch) -> pixel (hi*p+pi, wi*p+qi) of ch
        int p = 2, c = 3;
        Tensor x = Tensor.zeros(1, 4, p * p * c);
        for (int tk = 0; tk < 4; tk++) for (int f = 0; f < p * p * c; f++) x.set(tk * 100 + f, 0, tk, f);
        Tensor img = TransformerOps.unpatchify(x, p, c);
        assertArrayEquals(new int[] {1, 3, 4, 4}, img.shape());
        for (int ch = 0; ch < c; ch++) for (int row = 0; row < 4; row++) for (int col = 0; col < 4; col++) {
            int tk = (row / p) * 2 + col / p, f = ((row % p) * p + col % p) * c + ch;
            assertEquals(tk * 100 + f, img.get(0, ch, row, col));
        }
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.unpatchify(Tensor.zeros(1, 5, 12), 2, 3));
        // guidance: 2M = 2, channels 0..1 guided
        Tensor out = Tensor.of(new float[] {1, 2, 3, 10, 20, 30}, 2, 3, 1, 1);
        Tensor g = TransformerOps.classifierFreeGuidance(out, 2, 4f);
        assertArrayEquals(new float[] {-26, -52, 3, -26, -52, 30}, g.data());
    }

    @Test void sinCosTableHasTheDocumentedLayout() {
        Tensor pe = TransformerOps.sincosPosEmbed2d(8, 3);       // quarter = 2, omega = {1, 1/100}
        int tok = 1 * 3 + 2;                                       // row 1, column 2
        float[] expect = {(float) Math.sin(2), (float) Math.sin(0.02), (float) Math.cos(2), (float) Math.cos(0.02),
                (float) Math.sin(1), (float) Math.sin(0.01), (float) Math.cos(1), (float) Math.cos(0.01)};
        for (int k = 0; k < 8; k++) assertEquals(expect[k], pe.get(0, tok, k), 1e-7);
        assertThrows(IllegalArgumentException.class, () -> TransformerOps.sincosPosEmbed2d(6, 2));
    }
}
