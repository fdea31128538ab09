package io.diffquant.engine.model.dit;

import static io.diffquant.engine.testing.Golden.maxAbsDiff;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static io.diffquant.engine.model.dit.DiTTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/** DiT forward against an independent naive double-precision implementation, and exact structural properties. */
class DiTForwardTest {
    // class-conditional with null class, learned sigma, patch 2
    static final DiTConfig A = new DiTConfig(8, 2, 3, 32, 2, 4, 4.0, 0.1, 5, true);
    // odd token count (3x3 grid), patch 4, fractional mlp_ratio (int(24 * 2.5) = 60), no null class, no sigma
    static final DiTConfig B = new DiTConfig(12, 4, 2, 24, 1, 3, 2.5, 0.0, 3, false);
    // unconditional, patch 1
    static final DiTConfig C = new DiTConfig(4, 1, 1, 16, 2, 2, 4.0, 0.1, 0, true);

    private static void checkAgainstNaive(DiTConfig cfg, int n, int[] y) {
        DiT m = randomModel(cfg, 11, 0.3);
        Random r = new Random(5);
        Tensor x = rand(r, 1.0, n, cfg.inChannels(), cfg.inputSize(), cfg.inputSize());
        float[] t = new float[n];
        for (int i = 0; i < n; i++) t[i] = (float) (i * 437 % 1000);
        Tensor out = m.forward(x, t, y);
        Tensor ref = new NaiveDiT(cfg, m.stateDict()).forward(x, t, y);
        assertArrayEquals(new int[] {n, cfg.outChannels(), cfg.inputSize(), cfg.inputSize()}, out.shape());
        double err = maxAbsDiff(ref, out);
        assertTrue(maxAbs(ref) > 0.1, "a non-trivial output");
        assertTrue(err < 2e-5 * Math.max(1, maxAbs(ref)), cfg + ": max error vs naive double DiT " + err);
    }

    @Test void classConditionalMatchesNaiveReference() { checkAgainstNaive(A, 3, new int[] {0, 4, 5}); }

    @Test void oddGridPatch4FractionalMlpMatchesNaiveReference() { checkAgainstNaive(B, 2, new int[] {2, 0}); }

    @Test void unconditionalMatchesNaiveReference() { checkAgainstNaive(C, 2, null); }

    @Test void batchElementsAreIndependent() {
        DiT m = randomModel(A, 3, 0.3);
        Random r = new Random(9);
        Tensor x = rand(r, 1.0, 3, 3, 8, 8);
        float[] t = {10, 500, 999};
        int[] y = {1, 2, 5};
        Tensor all = m.forward(x, t, y);
        for (int i = 0; i < 3; i++) {
            Tensor one = m.forward(x.sliceRows(i, i + 1), new float[] {t[i]}, new int[] {y[i]});
            double err = maxAbsDiff(all.sliceRows(i, i + 1), one);
            assertTrue(err < 1e-5 * Math.max(1, maxAbs(one)), "element " + i + ": " + err + " of max " + maxAbs(one));
        }
    }

    /** adaLN-Zero: with zero gates a block is exactly the identity, whatever its other weights. */
    @Test void zeroGatesMakeABlockTheIdentity() {
        DiT m = randomModel(A, 4, 0.3);
        Map<String, Tensor> sd = m.stateDict();
        int d = A.hiddenSize();
        Layer ada = m.layers().get("blocks.1.adaLN_modulation.1");
        Tensor w = sd.get("blocks.1.adaLN_modulation.1.weight").copy(), b = sd.get("blocks.1.adaLN_modulation.1.bias").copy();
        for (int chunk : new int[] {2, 5}) {
            for (int o = chunk * d; o < (chunk + 1) * d; o++) {
                b.data()[o] = 0f;
                for (int i = 0; i < d; i++) w.data()[o * d + i] = 0f;
            }
        }
        ada.setParam("weight", w);
        ada.setParam("bias", b);
        Random r = new Random(1);
        ForwardContext ctx = m.context(rand(r, 1, 2, 3, 8, 8), new float[] {3, 700}, new int[] {0, 5});
        Tensor h = rand(r, 1.0, 2, A.tokens(), d);
        Tensor c = m.conditioning(ctx);
        Tensor out = m.block(1, h, c, ctx);
        assertArrayEquals(h.data(), out.data(), "gate zero => block output = input, exactly");
        // and block 0 (gates not zero) does change it
        assertTrue(maxAbsDiff(h, m.block(0, h, c, ctx)) > 1e-3);
    }

    /**
     * Hand-computable case: hidden 8, depth 1, all adaLN weights and biases zero. Then every block is the
     * identity and the final layer is plain LayerNorm -> linear, so the output is
     * linear(LN(conv_patch(x) + pos_embed)) rearranged to pixels; computed here directly.
     */
    @Test void zeroAdaLnGivesFinalLayerOfTheEmbeddedInput() {
        DiTConfig cfg = new DiTConfig(4, 2, 1, 8, 1, 2, 4.0, 0.1, 2, false);
        DiT m = randomModel(cfg, 8, 0.5);
        for (String name : new String[] {"blocks.0.adaLN_modulation.1", "final_layer.adaLN_modulation.1"}) {
            Layer l = m.layers().get(name);
            l.setParam("weight", Tensor.zeros(l.param("weight").shape()));
            l.setParam("bias", Tensor.zeros(l.param("bias").shape()));
        }
        Map<String, Tensor> sd = m.stateDict();
        float[] x = {1, -2, 0.5f, 3, 0, 1, 1, -1, 2, 2, -0.5f, 0.25f, 1.5f, -3, 0, 0.75f};
        Tensor out = m.forward(Tensor.of(x, 1, 1, 4, 4), new float[] {123}, new int[] {1});
        float[] pw = sd.get("x_embedder.proj.weight").data(), pb = sd.get("x_embedder.proj.bias").data();
        float[] pos = sd.get("pos_embed").data();
        float[] lw = sd.get("final_layer.linear.weight").data(), lb = sd.get("final_layer.linear.bias").data();
        for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) {
            double[] tok = new double[8];
            for (int o = 0; o < 8; o++) {
                tok[o] = pb[o] + pos[(i * 2 + j) * 8 + o];
                for (int pi = 0; pi < 2; pi++) for (int qi = 0; qi < 2; qi++)
                    tok[o] += pw[o * 4 + pi * 2 + qi] * x[(i * 2 + pi) * 4 + j * 2 + qi];
            }
            double mean = 0, var = 0;
            for (double v : tok) mean += v / 8;
            for (double v : tok) var += (v - mean) * (v - mean) / 8;
            for (int f = 0; f < 4; f++) {            // p*p*outC = 4 features: (pi, qi), one channel
                double acc = lb[f];
                for (int o = 0; o < 8; o++) acc += lw[f * 8 + o] * (tok[o] - mean) / Math.sqrt(var + 1e-6);
                int pi = f / 2, qi = f % 2;
                assertEquals(acc, out.get(0, 0, i * 2 + pi, j * 2 + qi), 1e-5, "pixel from token (" + i + "," + j + ") feature " + f);
            }
        }
    }

    @Test void forwardWithCfgEqualsTwoForwardsCombinedByHand() {
        DiT m = randomModel(A, 21, 0.3);
        Random r = new Random(2);
        Tensor half = rand(r, 1.0, 2, 3, 8, 8);
        Tensor junk = rand(r, 1.0, 2, 3, 8, 8);                 // the second half of x is ignored, as officially
        Tensor x = Tensor.concatRows(half, junk);
        float[] t = {100, 900, 100, 900};
        int[] y = {1, 3, 5, 5};
        float s = 4f;
        Tensor cond = m.forward(half, new float[] {100, 900}, new int[] {1, 3});
        Tensor unc = m.forward(half, new float[] {100, 900}, new int[] {5, 5});
        for (boolean ditCompatible : new boolean[] {false, true}) {
            Tensor g = m.forwardWithCfg(x, t, y, s, ditCompatible);
            assertArrayEquals(new int[] {4, 6, 8, 8}, g.shape());
            int guided = ditCompatible ? 3 : 3;           // in_channels = 3 here: both guide channels 0..2
            for (int n = 0; n < 2; n++) for (int ch = 0; ch < 6; ch++) for (int i = 0; i < 8; i++) for (int j = 0; j < 8; j++) {
                float cv = cond.get(n, ch, i, j), uv = unc.get(n, ch, i, j);
                float e1 = ch < guided ? uv + s * (cv - uv) : cv;
                float e2 = ch < guided ? uv + s * (cv - uv) : uv;
                assertEquals(e1, g.get(n, ch, i, j), 1e-4, "cond half n=" + n + " ch=" + ch);
                assertEquals(e2, g.get(n + 2, ch, i, j), 1e-4, "uncond half n=" + n + " ch=" + ch);
            }
        }
    }

    @Test void ditCompatibleGuidanceDiffersOnlyOnTheFourthEpsChannel() {
        DiTConfig cfg = new DiTConfig(8, 2, 4, 32, 1, 4, 4.0, 0.1, 5, true);
        DiT m = randomModel(cfg, 22, 0.3);
        Random r = new Random(3);
        Tensor h = rand(r, 1.0, 1, 4, 8, 8);
        Tensor x = Tensor.concatRows(h, h);
        float[] t = {400, 400};
        int[] y = {2, 5};
        Tensor all = m.forwardWithCfg(x, t, y, 3f, false), dit = m.forwardWithCfg(x, t, y, 3f, true);
        Tensor raw = m.forward(x, t, y);
        for (int n = 0; n < 2; n++) for (int ch = 0; ch < 8; ch++) {
            double diff = 0, rawDiff = 0;
            for (int i = 0; i < 8; i++) for (int j = 0; j < 8; j++) {
                diff = Math.max(diff, Math.abs(all.get(n, ch, i, j) - dit.get(n, ch, i, j)));
                rawDiff = Math.max(rawDiff, Math.abs(dit.get(n, ch, i, j) - raw.get(n, ch, i, j)));
            }
            if (ch == 3) {
                assertTrue(diff > 1e-3, "channel 3 is guided only in the all-channel variant");
                assertEquals(0, rawDiff, "DiT-compatible passes channel 3 through");
            } else {
                assertEquals(0, diff, 0, "channel " + ch);
            }
            if (ch >= 4) assertEquals(0, rawDiff, "sigma channel " + ch + " passed through");
        }
    }

    @Test void badInputsAreRejectedWithClearMessages() {
        DiT m = randomModel(A, 1, 0.1);
        Tensor x = Tensor.zeros(2, 3, 8, 8);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(Tensor.zeros(2, 4, 8, 8), new float[2], new int[2]))
                .getMessage().contains("[N, 3, 8, 8]"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[3], new int[2]))
                .getMessage().contains("t must hold 2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[2], null))
                .getMessage().contains("class-conditional"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[2], new int[] {0, 6}))
                .getMessage().contains("y[1] = 6 is outside [0, 5]"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forward(x, new float[] {0, Float.NaN}, new int[2]))
                .getMessage().contains("t[1]"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> m.forwardWithCfg(Tensor.zeros(3, 3, 8, 8), new float[3], new int[3], 2f, false))
                .getMessage().contains("[2M, C, H, W]"));
        DiT unc = new DiT(C);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> unc.forward(Tensor.zeros(1, 1, 4, 4), new float[1], new int[1]))
                .getMessage().contains("unconditional"));
        DiT noNull = new DiT(B);   // class_dropout_prob 0: no null class row
        assertTrue(assertThrows(IllegalArgumentException.class, () -> noNull.forward(Tensor.zeros(1, 2, 12, 12), new float[1], new int[] {3}))
                .getMessage().contains("outside [0, 2]"));
    }
}
