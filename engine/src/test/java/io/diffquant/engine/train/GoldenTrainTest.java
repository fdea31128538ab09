package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * AdamW and the learned-variance VLB against PyTorch: the numbers come from tools/train/golden_train.py
 * (torch 1.13 torch.optim.AdamW; the VLB written from ADM's formulas in float64 with autograd for d/dv).
 */
class GoldenTrainTest {
    @Test void adamWMatchesTorch() {
        Tensor p = Tensor.of(new float[] {0.5f, -1.0f, 2.0f, 0.0f, 3.0f}, 5);
        AdamW opt = new AdamW(Map.of("p", p), new AdamW.Config(0.01, 0.9, 0.999, 1e-8, 0.1));
        float[][] grads = {{0.1f, -0.2f, 0.3f, 0.0f, 1.5f}, {-0.05f, 0.4f, 0.3f, 1e-3f, -2.0f}, {0.2f, 0.2f, -0.7f, 0.0f, 0.1f}};
        float[][] torch = {
                {0.489500016f, -0.989000022f, 1.98800004f, 0f, 2.98699999f},
                {0.486347139f, -0.991672099f, 1.97601211f, -0.00744126271f, 2.98594809f},
                {0.479279667f, -0.995872855f, 1.97549582f, -0.0131859202f, 2.98420119f}};
        for (int s = 0; s < 3; s++) {
            Tensor g = Tensor.of(grads[s], 5);
            Gradients gr;
            try (Tape tape = Tape.start()) { // a gradient of exactly g for p: d(sum(p * g))/dp
                gr = tape.backward(io.diffquant.engine.tensor.Ops.sum(io.diffquant.engine.tensor.Ops.mul(p, g)));
            }
            assertArrayEquals(grads[s], gr.raw(p));
            opt.step(gr);
            for (int i = 0; i < 5; i++) assertEquals(torch[s][i], p.data()[i], 2e-7, "step " + (s + 1) + " element " + i);
        }
        assertEquals(3, opt.steps("p"));
        // a parameter without a gradient is left alone (no decay, no moment update), as torch does for grad None
        Tensor q = Tensor.full(2f, 3);
        AdamW o2 = new AdamW(Map.of("q", q), new AdamW.Config(0.1, 0.9, 0.999, 1e-8, 0.5));
        Gradients none;
        try (Tape tape = Tape.start()) { none = tape.backward(io.diffquant.engine.tensor.Ops.sum(Tensor.full(1f, 2))); }
        o2.step(none);
        assertArrayEquals(new float[] {2f, 2f, 2f}, q.data());
        assertEquals(0, o2.steps("q"));
    }

    @Test void emaWarmupAndDecay() {
        Tensor p = Tensor.of(new float[] {1f, -2f}, 2);
        Ema ema = new Ema(Map.of("p", p), new Ema.Config(0.9, true));
        assertEquals(2.0 / 11.0, ema.nextDecay(), 1e-15); // min(0.9, (1 + 1) / (10 + 1))
        p.data()[0] = 3f;
        ema.update();
        float d = (float) (2.0 / 11.0);
        assertEquals(1f * d + 3f * (float) (1 - 2.0 / 11.0), ema.averages().get("p").data()[0], 1e-7);
        for (int i = 0; i < 100; i++) ema.update();
        assertEquals(0.9, ema.nextDecay(), 0); // (1 + n) / (10 + n) > 0.9 from n = 81 on
        assertEquals(3f, ema.averages().get("p").data()[0], 1e-6, "converges to a constant parameter");
        Ema plain = new Ema(Map.of("p", p), new Ema.Config(0.9999, false));
        assertEquals(0.9999, plain.nextDecay(), 0);
    }

    private static final float[] X0 = {-1f, 1f, -0.215686277f, 0.568627477f, 0.00392156886f, -0.97647059f, -1f, 1f, 0.200000003f, -0.400000006f, 0.899999976f, -0.396078438f, 0.5f, -0.5f, 0f, 1f, -1f, 0.25f};
    private static final float[] EPS_PRED = {-2.31324577f, -0.73855722f, -1.43709147f, 0.122680187f, 0.251234472f, 0.494650841f, -0.1353755f, -0.538426161f, 0.216392219f, 0.993145287f, -0.855521739f, -1.32920456f, -0.241281211f, 1.48571765f, -0.677514911f, -0.493520051f, 0.692369998f, 0.746364653f};
    private static final float[] NOISE = {-2.31041169f, -0.373250872f, -1.2609247f, -0.726951063f, -0.0199647509f, 0.210299894f, 0.17718935f, -0.83051008f, 0.238718063f, 0.733528376f, -0.773011267f, -1.59518147f, -0.687003672f, 1.4880743f, -0.448415816f, -0.891003013f, 0.674857557f, 1.04686534f};
    private static final float[] V = {0.146025553f, 0.760723054f, -0.315922737f, 0.357138067f, 0.432090819f, 0.225869671f, -0.411973596f, -1f, 0.88772279f, 0.220523968f, -1f, 0.710971594f, 0.896030903f, 0.4820683f, -0.740296543f, -1f, 1f, -0.0330549404f};
    private static final float[] XT = {-1.02305412f, 0.996217489f, -0.228284732f, 0.561329544f, 0.0037217252f, -0.974318802f, -0.992794156f, 0.968727827f, 0.208657891f, -0.372707576f, 0.870913804f, -0.454571217f, -0.520279109f, 1.28955865f, -0.430620074f, -0.576722324f, 0.369154751f, 1.07504988f};
    private static final double LOSS = 0.440653400109;
    private static final double[] DV = {0.00289999312519, 0.003564994319, 0.0107661157623, 0.00203459442004, 0.0104868098548, 0.0102907372214, 0.000138469328719, -7.1017526791e-05, 0.000649409053775, 0.000383716010733, -5.66730324462e-06, 0.000543947979202, -2.36566887985e-08, 1.09173212343e-08, -8.03302151838e-09, -2.99447077532e-08, 1.46742547239e-08, -9.98354590708e-09};

    @Test void learnedVarianceVlbMatchesTorchReference() {
        NoiseSchedule s = NoiseSchedule.linear(1000);
        int[] t = {0, 7, 500};
        Tensor x0 = Tensor.of(X0.clone(), 3, 6), noise = Tensor.of(NOISE.clone(), 3, 6);
        Tensor xt = DiffusionObjective.qSample(x0, noise, t, s);
        assertArrayEquals(XT, xt.data(), "q_sample in float32 as torch");
        Tensor eps = Tensor.of(EPS_PRED.clone(), 3, 6), v = Tensor.of(V.clone(), 3, 6);
        Gradients g;
        Tensor loss;
        try (Tape tape = Tape.start()) {
            loss = LearnedVarianceLoss.loss(eps, v, x0, xt, t, s);
            g = tape.backward(loss);
        }
        assertEquals(LOSS, loss.data()[0], 1e-6 * LOSS);
        assertNull(g.raw(eps), "stop-gradient: no gradient to the predicted epsilon");
        float[] dv = g.raw(v);
        for (int i = 0; i < DV.length; i++) assertEquals(DV[i], dv[i], 1e-5 * Math.abs(DV[i]) + 1e-12, "dL/dv[" + i + "]");
    }

    @Test void learnedVarianceVlbGradientMatchesFiniteDifferences() {
        NoiseSchedule s = NoiseSchedule.linear(1000);
        int[] t = {0, 1, 999};
        java.util.Random r = new java.util.Random(3);
        Tensor x0 = Tensor.zeros(3, 8), eps = Tensor.zeros(3, 8), noise = Tensor.zeros(3, 8), v = Tensor.zeros(3, 8);
        for (int i = 0; i < 24; i++) {
            x0.data()[i] = (float) (2 * (r.nextInt(256) / 255.0) - 1);
            noise.data()[i] = (float) r.nextGaussian();
            eps.data()[i] = noise.data()[i] + 0.2f * (float) r.nextGaussian();
            v.data()[i] = (float) (0.9 * (2 * r.nextDouble() - 1));
        }
        Tensor xt = DiffusionObjective.qSample(x0, noise, t, s);
        float[] dv;
        try (Tape tape = Tape.start()) { dv = tape.backward(LearnedVarianceLoss.loss(eps, v, x0, xt, t, s)).raw(v); }
        double h = 1e-2; // the loss is float32: smaller steps drown in its rounding
        for (int i = 0; i < 24; i++) {
            float keep = v.data()[i];
            v.data()[i] = (float) (keep + h);
            double lp = LearnedVarianceLoss.loss(eps, v, x0, xt, t, s).data()[0];
            v.data()[i] = (float) (keep - h);
            double lm = LearnedVarianceLoss.loss(eps, v, x0, xt, t, s).data()[0];
            v.data()[i] = keep;
            double num = (lp - lm) / (2 * h);
            assertEquals(num, dv[i], 1e-2 * Math.abs(num) + 1e-5, "dL/dv[" + i + "] (t = " + t[i / 8] + ")");
        }
    }
}
