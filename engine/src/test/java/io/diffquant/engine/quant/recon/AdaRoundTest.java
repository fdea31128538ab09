package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.OcpFp8;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.format.RangeEstimator;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdaRound and scale-aware FP AdaRound on single weights and a single linear layer (ALGORITHMS.md §5). */
class AdaRoundTest {

    static Tensor randn(Random r, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
        return t;
    }

    /** Min-max parameters of a weight for a format and granularity (what the RTN weight calibration computes). */
    static QuantParams minMax(Tensor w, NumberFormat f, Granularity g) {
        return RangeEstimator.minMax().estimate(f, g, Layout.WEIGHT, w);
    }

    @Test void intInitialisationIsTheFractionalPart() {
        Tensor w = randn(new Random(1), 0.3, 16, 24);
        for (IntFormat f : List.of(IntFormat.asymmetric(4), IntFormat.symmetric(4), IntFormat.asymmetric(3))) {
            QuantParams p = minMax(w, f, Granularity.CHANNEL);
            AdaRoundWeight a = AdaRoundWeight.create("w", w, f, Granularity.CHANNEL, p, true);
            assertEquals(AdaRoundWeight.Kind.INT, a.kind());
            float[] h = a.softTargets();
            for (int i = 0; i < w.size(); i++) {
                double d = p.scale(i / 24), q = w.data()[i] / d;
                assertEquals(q - Math.floor(q), h[i], 1e-6, f.id() + " element " + i);
            }
            // the soft weight starts at W clamped to the grid's range (an asymmetric grid may end just below the max)
            Tensor s = a.softWeight();
            for (int i = 0; i < w.size(); i++) {
                float[] grid = f.grid(p, i / 24);
                double clamped = Math.max(grid[0], Math.min(grid[grid.length - 1], w.data()[i]));
                assertEquals(clamped, s.data()[i], 1e-5 * p.scale(i / 24) + 1e-6, f.id() + " soft weight " + i);
            }
        }
    }

    @Test void fpInitialisationIsTheRemainderOnTheBinadeStep() {
        Tensor w = randn(new Random(2), 0.5, 8, 64);
        for (FpFormat f : List.of(FpFormat.of(2, 1), FpFormat.of(3, 0), FpFormat.of(1, 2))) {
            Granularity g = Granularity.group(32);
            QuantParams p = minMax(w, f, g);
            GroupView view = new GroupView(g, Layout.WEIGHT, w.shape());
            for (boolean aware : new boolean[] {true, false}) {
                AdaRoundWeight a = AdaRoundWeight.create("w", w, f, g, p, aware);
                assertEquals(aware, a.scaleAware());
                float[] h = a.softTargets();
                for (int i = 0; i < w.size(); i++) {
                    int grp = view.groupOf(i);
                    float mv = p.scale(grp);
                    double s = f.step(w.data()[i], p, grp);
                    double xc = Math.max(-mv, Math.min(mv, w.data()[i]));
                    double r = xc / s - Math.floor(xc / s);
                    assertEquals(r, h[i], 1e-6, f.id() + (aware ? " scale-aware" : "") + " element " + i);
                }
                if (aware) {
                    // V_0 = s * h^-1(r) (s of the binade below for a negative value at a binade start, see AdaRoundWeight)
                    float[] v = a.variables().data();
                    int boundary = 0;
                    for (int i = 0; i < w.size(); i++) {
                        int grp = view.groupOf(i);
                        double s = f.step(w.data()[i], p, grp);
                        float mv = p.scale(grp);
                        if (Math.max(-mv, w.data()[i]) / s == -(1 << f.mantissaBits()) && s > f.step(0f, p, grp)) {
                            s /= 2;
                            boundary++;
                        }
                        double xc = Math.max(-mv, Math.min(mv, w.data()[i]));
                        assertEquals(s * AdaRoundWeight.inverse(xc / s - Math.floor(xc / s)), v[i], 1e-6 * Math.abs(v[i]) + 1e-9);
                    }
                    if (f.mantissaBits() == 0) assertTrue(boundary > 0, "E3M0: negative group maxima sit at binade starts");
                }
            }
        }
    }

    @Test void unsupportedFormatsAndBadParametersAreRejectedByName() {
        Tensor w = randn(new Random(3), 1, 4, 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AdaRoundWeight.create("blocks.0.fc.weight", w, OcpFp8.E4M3,
                Granularity.TENSOR, QuantParams.of(1f), true));
        assertTrue(e.getMessage().contains("blocks.0.fc.weight") && e.getMessage().contains("ocp-fp8-e4m3"), e.getMessage());
        IntFormat f = IntFormat.symmetric(4);
        e = assertThrows(IllegalArgumentException.class, () -> AdaRoundWeight.create("lin.weight", w, f, Granularity.CHANNEL, QuantParams.of(1f), true));
        assertTrue(e.getMessage().contains("lin.weight") && e.getMessage().contains("4 parameter groups"), e.getMessage());
        w.data()[5] = Float.NaN;
        e = assertThrows(IllegalArgumentException.class, () -> AdaRoundWeight.create("lin.weight", w, f, Granularity.TENSOR, QuantParams.of(1f), true));
        assertTrue(e.getMessage().contains("lin.weight"), e.getMessage());
    }

    /** Sorted grid of a group and the neighbours of x in it (the grid point at or below, the one at or above). */
    static float[] neighbours(float[] grid, double x) {
        float below = grid[0], above = grid[grid.length - 1];
        for (float g : grid) {
            if (g <= x) below = g;
            if (g >= x) { above = g; break; }
        }
        return new float[] {below, above};
    }

    @Test void hardenedWeightsLieOnTheGridAtAFloorOrCeilNeighbour() {
        Random r = new Random(4);
        Tensor w = randn(r, 0.4, 12, 40);
        Object[][] cases = {
                {IntFormat.asymmetric(4), Granularity.CHANNEL}, {IntFormat.symmetric(3), Granularity.group(8)},
                {FpFormat.of(2, 1), Granularity.group(20)}, {FpFormat.of(3, 0), Granularity.CHANNEL}, {FpFormat.of(1, 2), Granularity.TENSOR}};
        for (Object[] c : cases) {
            NumberFormat f = (NumberFormat) c[0];
            Granularity g = (Granularity) c[1];
            QuantParams p = minMax(w, f, g);
            AdaRoundWeight a = AdaRoundWeight.create("w", w, f, g, p, true);
            float[] v = a.variables().data();
            for (int i = 0; i < v.length; i++) v[i] += (float) (r.nextGaussian() * 3 * Math.abs(v[i]) + 1e-4 * r.nextGaussian());
            byte[] codes = a.codes();
            Tensor hard = a.hardWeight();
            assertArrayEquals(Quantizer.dequantize(new QuantizedTensor(f, g, Layout.WEIGHT, w.shape(), codes, p)).data(), hard.data());
            GroupView view = new GroupView(g, Layout.WEIGHT, w.shape());
            int up = 0, down = 0;
            for (int i = 0; i < w.size(); i++) {
                int grp = view.groupOf(i);
                float[] grid = f.grid(p, grp);
                float x = hard.data()[i];
                assertTrue(Arrays.binarySearch(grid, x == 0f ? 0f : x) >= 0, f.id() + ": " + x + " is not on the grid");
                float[] nb = neighbours(grid, w.data()[i]);
                boolean wantUp = v[i] >= 0;
                if (nb[0] == nb[1]) {
                    // W on the grid (a range end): floor(W/s) = W/s, so h = 1 moves to the grid point above (the clamp keeps the max)
                    int k = Arrays.binarySearch(grid, nb[0]);
                    // (W/s computed in floating point may also fall just below the grid point: then floor is the point below)
                    float prev = grid[Math.max(k - 1, 0)], next = grid[Math.min(k + 1, grid.length - 1)];
                    assertTrue(x == nb[0] || x == prev || x == next, f.id() + " element " + i + ": W=" + w.data()[i] + " on the grid hardened to " + x);
                } else {
                    assertTrue(x == nb[0] || x == nb[1], f.id() + " element " + i + ": W=" + w.data()[i] + " hardened to " + x
                            + ", neighbours " + nb[0] + ", " + nb[1]);
                    assertEquals(wantUp ? nb[1] : nb[0], x, f.id() + " element " + i + ": V=" + v[i] + " selects the " + (wantUp ? "upper" : "lower") + " neighbour");
                    if (wantUp) up++; else down++;
                }
            }
            assertTrue(up > 20 && down > 20, f.id() + ": both directions occur (" + up + " up, " + down + " down)");
        }
    }

    @Test void theWeightOpHasFiniteDifferenceGradientsAndThePenaltyTheAnalyticOne() {
        Random r = new Random(5);
        Tensor w = randn(r, 0.5, 4, 12);
        for (NumberFormat f : List.of(IntFormat.asymmetric(4), FpFormat.of(2, 1), FpFormat.of(3, 0))) {
            for (boolean aware : new boolean[] {true, false}) {
                QuantParams p = minMax(w, f, Granularity.CHANNEL);
                AdaRoundWeight a = AdaRoundWeight.create("w", w, f, Granularity.CHANNEL, p, aware);
                Tensor coef = randn(r, 1, 4, 12);
                double lambda = 0.3, beta = 3.5;
                Gradients gw, gp;
                try (Tape tape = Tape.start(List.of(a.variables()))) {
                    gw = tape.backward(Ops.sum(Ops.mul(a.beginSoft(), coef)));
                }
                try (Tape tape = Tape.start(List.of(a.variables()))) {
                    a.beginSoft();
                    gp = tape.backward(a.penalty(lambda, beta));
                }
                float[] grad = gw.get(a.variables()).data(), pgrad = gp.get(a.variables()).data();
                float[] v = a.variables().data(), h0 = a.softTargets();
                int checked = 0;
                for (int i = 0; i < v.length; i++) {
                    if (h0[i] < 0.02 || h0[i] > 0.98) continue;                     // keep away from the clip of h
                    float v0 = v[i];
                    double tau = a.tau(i), eps = 1e-2 * tau;  // W~ is float: a larger step keeps its rounding out of the difference
                    v[i] = (float) (v0 + eps);
                    double lp = dot(a.beginSoft(), coef);
                    v[i] = (float) (v0 - eps);
                    double lm = dot(a.beginSoft(), coef);
                    v[i] = v0;
                    double fd = (lp - lm) / (2 * eps);
                    assertEquals(fd, grad[i], 5e-3 * Math.max(0.1, Math.abs(fd)), f.id() + (aware ? " scale-aware" : "") + " W~ element " + i);
                    // penalty: d/dV λ(1 - |2h-1|^β) = -λβ|2h-1|^(β-1) sign(2h-1) 2 h'(V/τ)/τ, h' by a double difference of h(u)
                    double u = v0 / tau, du = 1e-6;
                    double hp = (AdaRoundWeight.rectifiedSigmoid(u + du) - AdaRoundWeight.rectifiedSigmoid(u - du)) / (2 * du) / tau;
                    double x = 2 * AdaRoundWeight.rectifiedSigmoid(u) - 1;
                    double want = -lambda * beta * Math.pow(Math.abs(x), beta - 1) * Math.signum(x) * 2 * hp;
                    assertEquals(want, pgrad[i], 1e-4 * Math.max(1, Math.abs(want)), f.id() + " penalty element " + i);
                    checked++;
                }
                assertTrue(checked > 20, "checked " + checked);
            }
        }
    }

    private static double dot(Tensor a, Tensor b) {
        double s = 0;
        for (int i = 0; i < a.size(); i++) s += (double) a.data()[i] * b.data()[i];
        return s;
    }

    @Test void penaltyValueIsTheRegulariser() {
        Tensor w = randn(new Random(6), 0.5, 3, 5);
        IntFormat f = IntFormat.asymmetric(4);
        AdaRoundWeight a = AdaRoundWeight.create("w", w, f, Granularity.TENSOR, minMax(w, f, Granularity.TENSOR), true);
        a.beginSoft();
        float[] h = a.softTargets();
        double want = 0;
        for (float x : h) want += 1 - Math.pow(Math.abs(2 * x - 1), 7.0);
        assertEquals(0.01 * want, a.penalty(0.01, 7.0).data()[0], 1e-6 * want);
        assertThrows(IllegalStateException.class, () -> AdaRoundWeight.create("w", w, f, Granularity.TENSOR, minMax(w, f, Granularity.TENSOR), true)
                .penalty(0.01, 2));
    }

    // ------------------------------------------------------------------ a single linear layer

    /** Inputs with correlated features (as real activations have), FP targets of a random linear layer. */
    record LayerProblem(Tensor x, Tensor w, Tensor b, Tensor y) {
        static LayerProblem make(long seed, int rows, int in, int out) {
            Random r = new Random(seed);
            Tensor z = randn(r, 1, rows, in), mix = randn(r, 1.0 / Math.sqrt(in), in, in);
            Tensor x = Ops.linear(z, mix, null);
            for (int i = 0; i < x.size(); i++) x.data()[i] += (float) (0.5 + 0.2 * (i % in) / in);   // non-zero mean per feature
            Tensor w = randn(r, 1.0 / Math.sqrt(in), out, in), b = randn(r, 0.1, out);
            return new LayerProblem(x, w, b, Ops.linear(x, w, b));
        }

        ActivationStore store(long budget, java.nio.file.Path dir) {
            ActivationStore s = new ActivationStore(x.dim(0), budget, dir);
            float[] t = new float[x.dim(0)];
            s.append(new Tensor[] {x, y}, t, null);
            return s;
        }
    }

    static double mse(Tensor a, Tensor b) {
        double s = 0;
        for (int i = 0; i < a.size(); i++) {
            double d = a.data()[i] - b.data()[i];
            s += d * d;
        }
        return s / a.size();
    }

    static double[] reconstructLayer(NumberFormat f, Granularity g, ReconSettings s, long seed) {
        LayerProblem lp = LayerProblem.make(seed, 256, 48, 24);
        QuantParams p = minMax(lp.w, f, g);
        AdaRoundWeight a = AdaRoundWeight.create("fc.weight", lp.w, f, g, p, true);
        try (ActivationStore store = lp.store(1 << 30, null)) {
            RoundingOptimizer opt = new RoundingOptimizer("fc", List.of(a), (in, ctx) -> Ops.linear(in[0], a.active(), lp.b), store,
                    s.iterations(), s, seed, false);
            while (opt.hasNext()) opt.step();
            opt.harden();
            double learned = mse(Ops.linear(lp.x, a.hardWeight(), lp.b), lp.y);
            double rtn = mse(Ops.linear(lp.x, AdaRoundWeight.rtn(lp.w, f, g, p), lp.b), lp.y);
            int[] all = RoundingOptimizer.spreadRows(store.rows(), store.rows());
            assertEquals(learned, opt.evaluate(all), 1e-6 * learned, "evaluate() is the MSE of the hardened layer");
            return new double[] {rtn, learned};
        }
    }

    @Test void adaRoundBeatsRoundToNearestOnALinearLayerInt4() {
        ReconSettings s = ReconSettings.defaults().withIterations(600).withBatchSize(32);
        double[] m = reconstructLayer(IntFormat.asymmetric(4), Granularity.CHANNEL, s, 11);
        assertTrue(m[1] < m[0], "INT4: learned rounding MSE " + m[1] + " must be below round-to-nearest " + m[0]);
    }

    @Test void fpAdaRoundBeatsRoundToNearestOnALinearLayerE2M1() {
        ReconSettings s = ReconSettings.defaults().withIterations(600).withBatchSize(32);
        double[] m = reconstructLayer(FpFormat.of(2, 1), Granularity.CHANNEL, s, 12);
        assertTrue(m[1] < m[0], "E2M1: learned rounding MSE " + m[1] + " must be below round-to-nearest " + m[0]);
    }

    /** Fraction of soft targets exactly 0 or 1 after optimising a layer. */
    static double hardFraction(NumberFormat f, ReconSettings s) {
        LayerProblem lp = LayerProblem.make(21, 128, 32, 16);
        QuantParams p = minMax(lp.w, f, Granularity.CHANNEL);
        AdaRoundWeight a = AdaRoundWeight.create("fc.weight", lp.w, f, Granularity.CHANNEL, p, true);
        float[] h0 = a.softTargets();
        int hard0 = 0;
        for (float h : h0) if (h == 0f || h == 1f) hard0++;
        assertTrue(hard0 < h0.length / 20, "at the start h = frac(W/s) is fractional");
        try (ActivationStore store = lp.store(1 << 30, null)) {
            RoundingOptimizer opt = new RoundingOptimizer("fc", List.of(a), (in, ctx) -> Ops.linear(in[0], a.active(), lp.b), store,
                    s.iterations(), s, 5, false);
            while (opt.hasNext()) opt.step();
        }
        int hard = 0;
        for (float h : a.softTargets()) if (h == 0f || h == 1f) hard++;
        return (double) hard / h0.length;
    }

    @Test void theRegulariserDrivesTheSoftTargetsToZeroOrOne() {
        ReconSettings s = ReconSettings.defaults().withIterations(1500).withBatchSize(32).withLr(1e-2);
        for (NumberFormat f : List.of(IntFormat.asymmetric(4), FpFormat.of(2, 1))) {
            double with = hardFraction(f, s), without = hardFraction(f, s.withLambda(0));
            assertTrue(with >= 0.99, f.id() + ": with the regulariser " + with + " of h are 0 or 1");
            assertTrue(without < 0.6, f.id() + ": without it only " + without + " are");
        }
    }

    @Test void betaScheduleAndWarmupFollowQDiffusion() {
        ReconSettings s = ReconSettings.defaults();
        assertEquals(20, s.beta(1, 1000));
        assertEquals(20, s.beta(199, 1000));
        assertEquals(20, s.beta(200, 1000), 1e-12);
        assertEquals(11, s.beta(600, 1000), 1e-12);
        assertEquals(2, s.beta(1000, 1000), 1e-12);
        assertTrue(!s.regularized(199, 1000) && s.regularized(200, 1000));
        assertEquals(20000, s.iterationsFor(true));
        assertEquals(2500, s.iterationsFor(false));
        assertEquals(7, s.withIterations(7).iterationsFor(false));
    }
}
