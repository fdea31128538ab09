package io.diffquant.engine.diffusion;

import static io.diffquant.engine.testing.Golden.*;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;

import static org.junit.jupiter.api.Assertions.*;

class SamplerTest {
    private static final NoiseSchedule LINEAR = NoiseSchedule.linear(1000);

    /** A fixed x_0 in [-0.9, 0.9]. */
    private static Tensor x0(int n, int c, int h, int w) {
        Tensor t = Tensor.zeros(n, c, h, w);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) d[i] = (float) (0.9 * Math.sin(0.37 * i + 0.1));
        return t;
    }

    /**
     * The exact epsilon of x_t for a known x_0, computed in double from the BASE schedule at the ORIGINAL timestep the
     * model receives: eps = (x - sqrt(abar_t) x0) / sqrt(1 - abar_t). Optionally appends v channels (learned sigma).
     */
    private static Denoiser oracle(Tensor x0, Float v) {
        return (x, t, y) -> {
            int n = x.dim(0), per = x.size() / n;
            int outC = v == null ? x.dim(1) : 2 * x.dim(1);
            Tensor out = Tensor.zeros(n, outC, x.dim(2), x.dim(3));
            for (int i = 0; i < n; i++) {
                int ti = (int) t[i];
                assertEquals(ti, t[i], 0f, "model receives an integer-valued original timestep");
                double ab = LINEAR.alphaCumprod(ti);
                for (int j = 0; j < per; j++) {
                    double xv = x.data()[i * per + j], x0v = x0.data()[(i % x0.dim(0)) * per + j];
                    out.data()[i * outC / x.dim(1) * per + j] = (float) ((xv - Math.sqrt(ab) * x0v) / Math.sqrt(1 - ab));
                    if (v != null) out.data()[i * 2 * per + per + j] = v;
                }
            }
            return out;
        };
    }


    @Test
    void ddimEta0WithOracleRecoversX0() {
        Tensor x0 = x0(2, 3, 8, 8);
        SampleRequest r = SampleRequest.builder(oracle(x0, null), 2, 3, 8, 8).respacing("ddim10").ddim(0).seed(5).build();
        SamplingResult res = Sampling.runToEnd(r);
        assertEquals(10, res.trajectory().size());
        assertSame(res.samples(), res.trajectory().get(9));
        assertTrue(maxAbsDiff(res.samples(), x0) < 1e-5, "DDIM recovers x0: " + maxAbsDiff(res.samples(), x0));
        // every intermediate x_t' lies on the deterministic DDIM path sqrt(ab') x0 + sqrt(1-ab') eps_T
        Tensor eps = res.initialNoise(); // x_T at t=900 is noise; eps of x_T = (x_T - sqrt(ab900) x0)/sqrt(1-ab900)
        double ab9 = LINEAR.alphaCumprod(900);
        for (int k = 0; k < 9; k++) {
            int tPrev = 800 - 100 * k;
            double ab = LINEAR.alphaCumprod(tPrev);
            Tensor xk = res.trajectory().get(k);
            double m = 0;
            for (int j = 0; j < xk.size(); j++) {
                double e = (eps.data()[j] - Math.sqrt(ab9) * x0.data()[j]) / Math.sqrt(1 - ab9);
                m = Math.max(m, Math.abs(xk.data()[j] - (Math.sqrt(ab) * x0.data()[j] + Math.sqrt(1 - ab) * e)));
            }
            assertTrue(m < 2e-5, "step " + k + " on the DDIM path, error " + m);
        }
    }

    @Test
    void modelReceivesOriginalTimestepValues() {
        List<float[]> seen = new ArrayList<>();
        Denoiser rec = (x, t, y) -> {
            seen.add(t.clone());
            return Tensor.zeros(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        };
        SamplingRun run = Sampling.start(SampleRequest.builder(rec, 3, 2, 4, 4).respacing("ddim10").build());
        assertArrayEquals(new int[] {900, 800, 700, 600, 500, 400, 300, 200, 100, 0}, run.timestepsInOrder());
        List<Integer> stepTs = new ArrayList<>();
        while (run.hasNext()) {
            SamplingStep s = run.next();
            assertEquals(10, s.totalSteps());
            assertEquals(stepTs.size(), s.index());
            stepTs.add(s.t());
        }
        assertEquals(List.of(900, 800, 700, 600, 500, 400, 300, 200, 100, 0), stepTs);
        assertEquals(10, seen.size());
        for (int k = 0; k < 10; k++) assertArrayEquals(new float[] {900 - 100 * k, 900 - 100 * k, 900 - 100 * k}, seen.get(k));
        assertThrows(NoSuchElementException.class, run::next);
        // section spacing "7": original values 999, 832, 666, 500, 333, 166, 0
        seen.clear();
        Sampling.runToEnd(SampleRequest.builder(rec, 1, 1, 2, 2).respacing("7").ddpm().build());
        float[] got = new float[seen.size()];
        for (int i = 0; i < got.length; i++) got[i] = seen.get(i)[0];
        assertArrayEquals(new float[] {999, 832, 666, 500, 333, 166, 0}, got);
    }

    @Test
    void ddpmWithOracleKeepsExactMarginalsAndEndsAtX0() {
        // With the exact x0, ancestral sampling with the posterior variance draws x_t' ~ q(x_t' | x0) exactly.
        int n = 2, c = 4, hw = 32;
        Tensor x0 = x0(n, c, hw, hw);
        SampleRequest r = SampleRequest.builder(oracle(x0, null), n, c, hw, hw).respacing("ddim10").ddpm()
                .fixedVariance(VarianceType.FIXED_SMALL).seed(11).build();
        SamplingRun run = Sampling.start(r);
        while (run.hasNext()) {
            SamplingStep s = run.next();
            if (s.isLast()) break;
            double ab = LINEAR.alphaCumprod(s.t() - 100);
            double s1 = 0, s2 = 0;
            for (int j = 0; j < s.x().size(); j++) {
                double z = (s.x().data()[j] - Math.sqrt(ab) * x0.data()[j]) / Math.sqrt(1 - ab);
                s1 += z;
                s2 += z * z;
            }
            int m = s.x().size();
            assertEquals(0, s1 / m, 0.05, "standardized mean at t=" + s.t());
            assertEquals(1, s2 / m, 0.06, "standardized variance at t=" + s.t());
            assertTrue(maxAbsDiff(s.predX0(), x0) < 1e-4, "x0 prediction at t=" + s.t());
        }
        assertTrue(maxAbsDiff(run.result(), x0) < 1e-4, "DDPM ends at x0: " + maxAbsDiff(run.result(), x0));
    }

    @Test
    void ddimEta1KeepsExactMarginals() {
        int n = 2, c = 4, hw = 32;
        Tensor x0 = x0(n, c, hw, hw);
        SamplingRun run = Sampling.start(SampleRequest.builder(oracle(x0, null), n, c, hw, hw).respacing("ddim10").ddim(1.0)
                .seed(3).build());
        double[] varByStep = new double[10];
        while (run.hasNext()) {
            SamplingStep s = run.next();
            if (s.isLast()) break;
            double ab = LINEAR.alphaCumprod(s.t() - 100);
            double s2 = 0;
            for (int j = 0; j < s.x().size(); j++) {
                double z = (s.x().data()[j] - Math.sqrt(ab) * x0.data()[j]) / Math.sqrt(1 - ab);
                s2 += z * z;
            }
            varByStep[s.index()] = s2 / s.x().size();
            assertEquals(1, varByStep[s.index()], 0.06, "standardized variance at t=" + s.t());
        }
        assertTrue(maxAbsDiff(run.result(), x0) < 1e-4);
        // and eta actually adds noise: the eta=0 run differs from the eta=1 run at intermediate steps
        SamplingResult det = Sampling.runToEnd(SampleRequest.builder(oracle(x0, null), n, c, hw, hw).respacing("ddim10")
                .ddim(0).seed(3).build());
        SamplingResult sto = Sampling.runToEnd(SampleRequest.builder(oracle(x0, null), n, c, hw, hw).respacing("ddim10")
                .ddim(1).seed(3).build());
        assertTrue(maxAbsDiff(det.trajectory().get(4), sto.trajectory().get(4)) > 0.1);
    }

    @Test
    void singleDdimStepMatchesGoldenSpecFormula() {
        // one DDIM step with a constant fake eps, compared with the golden-spec formula computed in double
        Denoiser constEps = (x, t, y) -> Tensor.full(0.3f, x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        Tensor xT = x0(1, 2, 3, 3);
        SamplingRun run = Sampling.start(SampleRequest.builder(constEps, 1, 2, 3, 3).respacing("ddim10").initialNoise(xT).build());
        SamplingStep s = run.next();
        double ab = LINEAR.alphaCumprod(900), abp = LINEAR.alphaCumprod(800);
        for (int j = 0; j < xT.size(); j++) {
            double x = xT.data()[j];
            double x0 = Math.sqrt(1 / ab) * x - Math.sqrt(1 / ab - 1) * 0.3;
            double eps = (Math.sqrt(1 / ab) * x - x0) / Math.sqrt(1 / ab - 1);
            double xp = Math.sqrt(abp) * x0 + Math.sqrt(1 - abp) * eps;
            assertEquals(x0, s.predX0().data()[j], 2e-5 * Math.max(1, Math.abs(x0)));
            assertEquals(xp, s.x().data()[j], 1e-5 * Math.max(1, Math.abs(xp)));
        }
        assertArrayEquals(xT.data(), run.initialNoise().data(), "initial noise is the given tensor");
    }

    @Test
    void clipDenoisedClampsX0() {
        Denoiser big = (x, t, y) -> Tensor.full(-5f, x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        SamplingStep s = Sampling.start(SampleRequest.builder(big, 1, 1, 4, 4).respacing("ddim10").clipDenoised(true).seed(1)
                .build()).next();
        float mx = 0;
        for (float v : s.predX0().data()) mx = Math.max(mx, Math.abs(v));
        assertEquals(1f, mx, 0f, "x0 clamped to [-1, 1] (eps = -5 pushes it far above 1)");
    }

    @Test
    void classifierFreeGuidanceCombination() {
        // eps channel ch of a sample labelled y at t: 0.1 y + 0.01 ch + 1e-4 t; v channel ch: -0.05 y + 0.02 ch
        int C = 4;
        List<int[]> labelsSeen = new ArrayList<>();
        List<Tensor> inputs = new ArrayList<>();
        Denoiser fake = (x, t, y) -> {
            labelsSeen.add(y.clone());
            inputs.add(x.copy());
            int n = x.dim(0), plane = x.dim(2) * x.dim(3);
            Tensor out = Tensor.zeros(n, 2 * C, x.dim(2), x.dim(3));
            for (int i = 0; i < n; i++)
                for (int ch = 0; ch < 2 * C; ch++)
                    for (int p = 0; p < plane; p++) {
                        float v = ch < C ? 0.1f * y[i] + 0.01f * ch + 1e-4f * t[i] : -0.05f * y[i] + 0.02f * (ch - C);
                        out.data()[(i * 2 * C + ch) * plane + p] = v;
                    }
            return out;
        };
        float s = 4f;
        for (GuidanceMode mode : GuidanceMode.values()) {
            labelsSeen.clear();
            inputs.clear();
            SampleRequest r = SampleRequest.builder(fake, 2, C, 2, 2).learnSigma(true).labels(3, 7)
                    .cfg(s, mode, 10).respacing("ddim10").seed(9).build();
            SamplingStep st = Sampling.start(r).next();
            assertArrayEquals(new int[] {3, 7, 10, 10}, labelsSeen.get(0), "[cond; null class] labels");
            Tensor in = inputs.get(0);
            assertArrayEquals(in.sliceRows(0, 2).data(), in.sliceRows(2, 4).data(), "both halves get the same x");
            assertArrayEquals(new int[] {2, 2 * C, 2, 2}, st.modelOutput().shape(), "cond half only");
            for (int i = 0; i < 2; i++) {
                int y = i == 0 ? 3 : 7;
                for (int ch = 0; ch < 2 * C; ch++) {
                    float cond = ch < C ? 0.1f * y + 0.01f * ch + 1e-4f * 900 : -0.05f * y + 0.02f * (ch - C);
                    float unc = ch < C ? 0.1f * 10 + 0.01f * ch + 1e-4f * 900 : -0.05f * 10 + 0.02f * (ch - C);
                    boolean guided = ch < (mode == GuidanceMode.ALL_CHANNELS ? C : 3);
                    double expected = guided ? unc + 4.0 * (cond - unc) : cond;
                    assertEquals(expected, st.modelOutput().get(i, ch, 1, 0), 1e-5, mode + " sample " + i + " channel " + ch);
                }
            }
            assertArrayEquals(new int[] {2, C, 2, 2}, st.x().shape(), "samples are the cond half");
        }
    }

    @Test
    void guidanceCombineDirect() {
        // [cond; uncond] with 2 samples, 4 output channels of which 3 are eps, 1x1 spatial
        Tensor out = Tensor.of(new float[] {
                1, 2, 3, 9,      // cond 0
                5, 6, 7, 8,      // cond 1
                0, 1, 1, -9,     // uncond 0
                1, 1, 1, -8}, 4, 4, 1, 1);
        Tensor all = Guidance.combine(out, 3, 2.0, GuidanceMode.ALL_CHANNELS);
        assertArrayEquals(new float[] {2, 3, 5, 9, 9, 11, 13, 8}, all.data());
        Tensor dit = Guidance.combine(out, 4, 2.0, GuidanceMode.DIT_COMPATIBLE);
        assertArrayEquals(new float[] {2, 3, 5, 9, 9, 11, 13, 8}, dit.data(), "channel 3 from the cond half");
        Tensor all4 = Guidance.combine(out, 4, 2.0, GuidanceMode.ALL_CHANNELS);
        assertArrayEquals(new float[] {2, 3, 5, 27, 9, 11, 13, 24}, all4.data());
        assertThrows(IllegalArgumentException.class, () -> Guidance.combine(out.sliceRows(0, 3), 3, 2, GuidanceMode.ALL_CHANNELS));
        assertThrows(IllegalArgumentException.class, () -> Guidance.combine(out, 2, 2, GuidanceMode.DIT_COMPATIBLE));
    }

    @Test
    void learnedSigmaDdpmVarianceMatchesDirectFormula() {
        // eps = 0 and x_T = 0 -> x0_hat = 0, posterior mean = 0, so x after step 1 = sigma * z exactly.
        float[] vs = {-1f, 1f, 0.3f};
        int n = 3, per = 2 * 3 * 3;
        Denoiser fake = (x, t, y) -> {
            Tensor out = Tensor.zeros(n, 4, 3, 3);
            for (int i = 0; i < n; i++) for (int j = per; j < 2 * per; j++) out.data()[i * 2 * per + j] = vs[i];
            return out;
        };
        SamplingRun run = Sampling.start(SampleRequest.builder(fake, n, 2, 3, 3).learnSigma(true).ddpm().respacing("ddim10")
                .initialNoise(Tensor.zeros(n, 2, 3, 3)).seed(77).build());
        SamplingStep s = run.next();
        assertEquals(900, s.t());
        // respaced constants computed directly from the base schedule at t = 900 and t_prev = 800
        double ab = LINEAR.alphaCumprod(900), abPrev = LINEAR.alphaCumprod(800);
        double beta = 1 - ab / abPrev;
        double betaTilde = beta * (1 - abPrev) / (1 - ab);
        SeededNoise noise = new SeededNoise(77);
        for (int i = 0; i < n; i++) {
            double frac = (vs[i] + 1) / 2;
            double sigma = Math.exp(0.5 * (frac * Math.log(beta) + (1 - frac) * Math.log(betaTilde)));
            float[] z = new float[per];
            noise.fill(SeededNoise.STREAM_STEP, i, 900, z, 0, per);
            for (int j = 0; j < per; j++) {
                assertEquals(sigma * z[j], s.x().data()[i * per + j], 2e-6 * Math.abs(sigma * z[j]) + 1e-7,
                        "sample " + i + " v=" + vs[i]);
            }
        }
        // fixed variances on the same setup
        for (VarianceType vt : VarianceType.values()) {
            Denoiser zero = (x, t, y) -> Tensor.zeros(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
            SamplingStep f = Sampling.start(SampleRequest.builder(zero, 1, 2, 3, 3).ddpm().respacing("ddim10").fixedVariance(vt)
                    .initialNoise(Tensor.zeros(1, 2, 3, 3)).seed(77).build()).next();
            double sigma = Math.sqrt(vt == VarianceType.FIXED_SMALL ? betaTilde : beta);
            float[] z = new float[per];
            noise.fill(SeededNoise.STREAM_STEP, 0, 900, z, 0, per);
            for (int j = 0; j < per; j++) assertEquals(sigma * z[j], f.x().data()[j], 2e-6 * Math.abs(sigma * z[j]) + 1e-7, vt.name());
        }
    }

    @Test
    void noiseIdenticalAcrossThreadsAndBatchSizes() {
        Tensor x0 = x0(4, 3, 8, 8);
        int saved = Parallel.threads();
        try {
            Parallel.setThreads(1);
            Tensor a = Sampling.runToEnd(SampleRequest.builder(oracle(x0, null), 4, 3, 8, 8).ddpm().respacing("ddim10").seed(21)
                    .build(), true).trajectory().get(4);
            Parallel.setThreads(2);
            Tensor b = Sampling.runToEnd(SampleRequest.builder(oracle(x0, null), 4, 3, 8, 8).ddpm().respacing("ddim10").seed(21)
                    .build(), true).trajectory().get(4);
            assertArrayEquals(a.data(), b.data(), "thread count does not change DDPM samples");
            Tensor first2 = Sampling.runToEnd(SampleRequest.builder(oracle(x0.sliceRows(0, 2), null), 2, 3, 8, 8).ddpm()
                    .respacing("ddim10").seed(21).build(), true).trajectory().get(4);
            assertArrayEquals(a.sliceRows(0, 2).data(), first2.data(), "sample i does not depend on the batch size");
            Tensor last2 = Sampling.runToEnd(SampleRequest.builder(oracle(x0.sliceRows(2, 4), null), 2, 3, 8, 8).ddpm()
                    .respacing("ddim10").seed(21).firstSampleIndex(2).build(), true).trajectory().get(4);
            assertArrayEquals(a.sliceRows(2, 4).data(), last2.data(), "firstSampleIndex continues a split job");
            Tensor other = Sampling.runToEnd(SampleRequest.builder(oracle(x0, null), 4, 3, 8, 8).ddpm().respacing("ddim10").seed(22)
                    .build(), true).trajectory().get(4);
            assertTrue(maxAbsDiff(a, other) > 0.1, "another seed gives other samples");
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void cancellationBetweenSteps() {
        Denoiser zero = (x, t, y) -> Tensor.zeros(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        SamplingRun run = Sampling.start(SampleRequest.builder(zero, 1, 1, 2, 2).respacing("ddim10").build());
        run.next();
        run.next();
        run.next();
        assertFalse(run.isCancelled());
        run.cancel();
        assertTrue(run.isCancelled());
        assertFalse(run.hasNext());
        assertEquals(3, run.stepsDone());
        assertThrows(CancellationException.class, run::next);
        assertThrows(IllegalStateException.class, run::result);
        // a cancel arriving during a step (e.g. from the UI thread) lets that step finish, then stops
        SamplingRun[] holder = new SamplingRun[1];
        int[] calls = {0};
        Denoiser cancelling = (x, t, y) -> {
            if (++calls[0] == 2) holder[0].cancel();
            return Tensor.zeros(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        };
        holder[0] = Sampling.start(SampleRequest.builder(cancelling, 1, 1, 2, 2).respacing("ddim10").build());
        assertEquals(900, holder[0].next().t());
        SamplingStep second = holder[0].next();
        assertEquals(800, second.t());
        assertFalse(holder[0].hasNext());
        assertEquals(2, calls[0]);
    }

    @Test
    void badModelOutputAndRequestsAreReported() {
        Denoiser wrongC = (x, t, y) -> Tensor.zeros(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        SamplingRun run = Sampling.start(SampleRequest.builder(wrongC, 1, 4, 2, 2).learnSigma(true).respacing("ddim10").build());
        IllegalStateException e = assertThrows(IllegalStateException.class, run::next);
        assertTrue(e.getMessage().contains("[1, 8, 2, 2]") && e.getMessage().contains("t=900"), e.getMessage());
        Denoiser nan = (x, t, y) -> Tensor.full(Float.NaN, x.dim(0), x.dim(1), x.dim(2), x.dim(3));
        IllegalStateException e2 = assertThrows(IllegalStateException.class,
                () -> Sampling.start(SampleRequest.builder(nan, 1, 1, 2, 2).build()).next());
        assertTrue(e2.getMessage().contains("NaN"), e2.getMessage());
        var b = SampleRequest.builder(wrongC, 2, 4, 2, 2);
        assertThrows(IllegalArgumentException.class, () -> b.labels(1).build(), "label count");
        assertThrows(IllegalArgumentException.class, () -> b.labels((int[]) null).cfg(4, 10).build(), "cfg needs labels");
        assertThrows(IllegalArgumentException.class, () -> b.labels(1, 11).cfg(4, 10).build(), "label above null class");
        IllegalArgumentException r = assertThrows(IllegalArgumentException.class,
                () -> SampleRequest.builder(wrongC, 1, 1, 2, 2).respacing("ddim7x").build());
        assertTrue(r.getMessage().contains("ddim7x"), r.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> SampleRequest.builder(wrongC, 1, 1, 2, 2).initialNoise(Tensor.zeros(1, 1, 3, 3)).build());
        assertThrows(IllegalArgumentException.class, () -> new DdimSampler(-0.1));
        assertThrows(IllegalArgumentException.class, () -> Sampler.named("euler", 0));
        assertEquals(new DdimSampler(0.5), Sampler.named("DDIM", 0.5));
    }

    @Test
    void forModelTakesShapeSigmaAndNullClassFromTheModel() {
        List<int[]> labels = new ArrayList<>();
        DiffusionModel m = new DiffusionModel() {
            @Override public String architecture() { return "DiT"; }
            @Override public int inChannels() { return 4; }
            @Override public int outChannels() { return 8; }
            @Override public int sampleSize() { return 6; }
            @Override public int numClasses() { return 1000; }
            @Override public boolean learnSigma() { return true; }
            @Override public Tensor forward(Tensor x, float[] t, int[] y) {
                labels.add(y.clone());
                return Tensor.zeros(x.dim(0), 8, 6, 6);
            }
        };
        SampleRequest r = SampleRequest.forModel(m, 2).labels(207, 360).cfg(4.0).respacing("ddim10").build();
        assertArrayEquals(new int[] {2, 4, 6, 6}, r.shape());
        assertTrue(r.learnSigma());
        assertEquals(new Guidance(4.0, GuidanceMode.ALL_CHANNELS, 1000), r.guidance());
        Sampling.start(r).next();
        assertArrayEquals(new int[] {207, 360, 1000, 1000}, labels.get(0));
        DiffusionModel uncond = new DiffusionModel() {
            @Override public String architecture() { return "UNet2DModel"; }
            @Override public int inChannels() { return 3; }
            @Override public int outChannels() { return 3; }
            @Override public int sampleSize() { return 16; }
            @Override public int numClasses() { return 0; }
            @Override public boolean learnSigma() { return false; }
            @Override public Tensor forward(Tensor x, float[] t, int[] y) { return Tensor.zeros(x.dim(0), 3, 16, 16); }
        };
        assertThrows(IllegalArgumentException.class, () -> SampleRequest.forModel(uncond, 1).cfg(4.0));
        assertEquals(3 * 16 * 16, Sampling.runToEnd(SampleRequest.forModel(uncond, 1).respacing("ddim10").build()).samples().size());
    }
}
