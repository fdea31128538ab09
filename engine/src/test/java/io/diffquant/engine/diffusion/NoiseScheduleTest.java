package io.diffquant.engine.diffusion;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class NoiseScheduleTest {

    private static void assertRel(double expected, double actual, double rel, String what) {
        assertEquals(expected, actual, Math.abs(expected) * rel + 1e-300, what);
    }

    @Test
    void linearT1000MatchesIndependentProduct() {
        NoiseSchedule s = NoiseSchedule.linear(1000);
        assertEquals(1000, s.numTimesteps());
        assertEquals(1 - 1e-4, s.alphaCumprod(0), 0.0);
        assertEquals(0.02, s.beta(999), 0.0);
        // independent reference in double: beta_i = 1e-4 + i (0.02 - 1e-4) / 999
        double prod = 1;
        for (int i = 0; i < 1000; i++) {
            double b = 1e-4 + i * ((0.02 - 1e-4) / 999);
            assertRel(b, s.beta(i), 1e-13, "beta " + i);
            prod *= 1 - b;
            assertRel(prod, s.alphaCumprod(i), 1e-12, "alphas_cumprod " + i);
        }
        assertRel(4.0358e-05, s.alphaCumprod(999), 1e-4, "alphas_cumprod[999]");
        // numpy (ADM code, float64) values
        assertEquals(0.00011991991991991993, s.beta(1), 1e-20);
        assertRel(0.07779665836502389, s.alphaCumprod(500), 1e-14, "ac[500] vs numpy");
        assertRel(4.035829765375676e-05, s.alphaCumprod(999), 1e-13, "ac[999] vs numpy");
    }

    @Test
    void posteriorConstantsAsAdm() {
        NoiseSchedule s = NoiseSchedule.linear(1000);
        assertEquals(1.0, s.alphaCumprodPrev(0), 0.0);
        assertEquals(0.0, s.posteriorVariance(0), 0.0);
        assertEquals(Math.log(s.posteriorVariance(1)), s.posteriorLogVarianceClipped(0), 0.0, "clipped log at 0 repeats index 1");
        assertEquals(0.0, s.posteriorMeanCoef2(0), 0.0);
        assertRel(1.0, s.posteriorMeanCoef1(0), 1e-12, "coef1[0]");
        // numpy reference values from ADM's formulas
        assertRel(5.4531876613021935e-05, s.posteriorVariance(1), 1e-12, "pv[1]");
        assertRel(-4.600049739984907, s.posteriorLogVarianceClipped(500), 1e-13, "plv[500]");
        assertRel(0.003058057075629619, s.posteriorMeanCoef1(500), 1e-12, "c1[500]");
        assertRel(0.9941043507567258, s.posteriorMeanCoef2(500), 1e-13, "c2[500]");
        // the posterior mean is a convex-like combination: coef1 sqrt(abar) + coef2 sqrt(abar_{t}) ... identity check:
        // q(x_{t-1}|x_t,x0) mean of E[x_t]=sqrt(ab_t) x0 must be sqrt(ab_{t-1}) x0
        for (int t : new int[] {1, 10, 500, 999}) {
            double lhs = s.posteriorMeanCoef1(t) + s.posteriorMeanCoef2(t) * Math.sqrt(s.alphaCumprod(t));
            assertRel(Math.sqrt(s.alphaCumprodPrev(t)), lhs, 1e-12, "posterior mean identity at " + t);
            // and the variance identity: pv = beta (1-ab_prev)/(1-ab)
            assertRel(s.beta(t) * (1 - s.alphaCumprodPrev(t)) / (1 - s.alphaCumprod(t)), s.posteriorVariance(t), 1e-14, "pv " + t);
            assertEquals(Math.sqrt(1 / s.alphaCumprod(t)), s.sqrtRecipAlphaCumprod(t), 1e-12);
            assertEquals(Math.sqrt(1 / s.alphaCumprod(t) - 1), s.sqrtRecipm1AlphaCumprod(t), 1e-12);
        }
        assertEquals(s.posteriorVariance(1), s.fixedLargeVariance(0), 0.0);
        assertEquals(s.beta(7), s.fixedLargeVariance(7), 0.0);
    }

    @Test
    void linearIsRescaledForOtherT() {
        NoiseSchedule s = NoiseSchedule.linear(250);
        assertRel(0.0004, s.beta(0), 1e-15, "beta0");
        assertRel(0.08, s.beta(249), 1e-15, "beta end");
        assertRel(0.03236787148594377, s.beta(100), 1e-14, "beta 100 vs numpy");
        NoiseSchedule u = NoiseSchedule.linear(250, 1e-4, 0.02);
        assertEquals(1e-4, u.beta(0), 0.0);
        assertEquals(0.02, u.beta(249), 0.0);
    }

    @Test
    void cosineProperties() {
        int T = 1000;
        NoiseSchedule s = NoiseSchedule.cosine(T);
        assertEquals(0.999, s.beta(T - 1), 0.0, "last beta is capped");
        double f0 = Math.pow(Math.cos(0.008 / 1.008 * Math.PI / 2), 2);
        for (int i = 0; i < T - 1; i++) {
            assertTrue(s.beta(i) > 0 && s.beta(i) < 0.999, "beta in (0, 0.999) at " + i);
            assertTrue(s.beta(i + 1) > s.beta(i), "betas increase at " + i);
            // no clipping before the last step: alphas_cumprod follows the closed form f(t)/f(0)
            double ft = Math.pow(Math.cos(((i + 1.0) / T + 0.008) / 1.008 * Math.PI / 2), 2);
            assertRel(ft / f0, s.alphaCumprod(i), 1e-9, "closed form abar at " + i);
        }
        assertRel(4.128422482196914e-05, s.beta(0), 1e-12, "beta0 vs numpy");
        assertRel(0.003155691441585007, s.beta(500), 1e-12, "beta500 vs numpy");
        assertRel(0.49228517244880304, s.alphaCumprod(500), 1e-12, "abar500 vs numpy");
        // cosine keeps more signal in the middle than linear (the point of the schedule)
        assertTrue(s.alphaCumprod(500) > NoiseSchedule.linear(T).alphaCumprod(500));
        assertEquals(0.5, NoiseSchedule.cosine(T, 0.5).beta(T - 1), 0.0);
    }

    @Test
    void scaledLinearIsLinearInSqrtSpace() {
        NoiseSchedule s = NoiseSchedule.scaledLinear(1000, 0.00085, 0.012);
        assertRel(0.00085, s.beta(0), 1e-15, "start");
        assertRel(0.012, s.beta(999), 1e-15, "end");
        assertRel(0.00481495414171188, s.beta(500), 1e-14, "mid vs numpy");
        assertRel(0.004660098513077238, s.alphaCumprod(999), 1e-12, "abar end vs numpy");
        double d = Math.sqrt(s.beta(1)) - Math.sqrt(s.beta(0));
        for (int i = 1; i < 1000; i++) assertEquals(d, Math.sqrt(s.beta(i)) - Math.sqrt(s.beta(i - 1)), 1e-12);
    }

    @Test
    void namedSchedulesAndErrors() {
        assertEquals(NoiseSchedule.linear(1000).alphaCumprod(999), NoiseSchedule.named("linear", 1000).alphaCumprod(999), 0.0);
        assertEquals(0.00085, NoiseSchedule.named("scaled_linear", 1000).beta(0), 1e-15);
        assertEquals(0.00085, NoiseSchedule.named("scaled-linear", 1000).beta(0), 1e-15);
        assertEquals(NoiseSchedule.cosine(100).beta(3), NoiseSchedule.named("squaredcos_cap_v2", 100).beta(3), 0.0);
        assertEquals(NoiseSchedule.cosine(100).beta(3), NoiseSchedule.named("cosine", 100).beta(3), 0.0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.named("sigmoid", 1000));
        assertTrue(e.getMessage().contains("sigmoid"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.named(null, 1000));
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.linear(0));
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class,
                () -> NoiseSchedule.fromBetas("x", new double[] {0.1, 0.0}));
        assertTrue(b.getMessage().contains("beta[1]"), b.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NoiseSchedule.fromBetas("x", new double[] {1.5}));
    }

    @Test
    void singleStepScheduleHasFiniteConstants() {
        NoiseSchedule s = NoiseSchedule.fromBetas("one", new double[] {0.3});
        assertEquals(0.7, s.alphaCumprod(0), 1e-15);
        assertTrue(Double.isFinite(s.posteriorLogVarianceClipped(0)));
        assertTrue(Double.isFinite(s.fixedLargeLogVariance(0)));
    }
}
