package io.diffquant.engine.quant.format;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** FP4DiT ExMy grids and rounding, against the paper's formula (computed independently with Math.log/pow). */
class FpFormatTest {

    private static QuantParams mv(float maxval) { return QuantParams.of(maxval); }

    @Test void e2m1WithMaxval6IsTheContractGrid() {
        FpFormat f = FpFormat.of(2, 1);
        assertEquals("fp4-e2m1", f.id());
        assertEquals(4, f.codeBits());
        float[] expected = {-6, -4, -3, -2, -1.5f, -1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
        assertArrayEquals(expected, f.grid(mv(6f)));
        assertEquals(1.0, f.bias(6f), 1e-12);
    }

    @Test void e2m1HandValuesAndTiesToEven() {
        FpFormat f = FpFormat.of(2, 1);
        QuantParams p = mv(6f);
        // torch.round(x / s) * s with s = 2^(e - M - b), b = 1; exact midpoints round half to even
        float[][] cases = {
                {0.25f, 0f}, {0.75f, 1f}, {1.25f, 1f}, {1.75f, 2f}, {2.5f, 2f}, {3.5f, 4f}, {5f, 4f},
                {-0.25f, -0f}, {-2.5f, -2f}, {-5f, -4f},
                {2.9f, 3f}, {-0.3f, -0.5f}, {0.2f, 0f}, {5.01f, 6f}, {7f, 6f}, {-100f, -6f},
                {Float.POSITIVE_INFINITY, 6f}, {Float.NEGATIVE_INFINITY, -6f}};
        for (float[] c : cases) {
            assertEquals(Float.floatToIntBits(c[1]), Float.floatToIntBits(f.fakeQuant(c[0], p, 0)), "x = " + c[0]);
        }
        assertTrue(Float.isNaN(f.fakeQuant(Float.NaN, p, 0)));
        assertThrows(IllegalArgumentException.class, () -> f.encode(Float.NaN, p, 0));
        // sign-magnitude codes: S EE M
        assertEquals(0b0111, f.encode(6f, p, 0));
        assertEquals(0b1001, f.encode(-0.5f, p, 0));
        assertEquals(0b0100, f.encode(2.5f, p, 0));
        assertEquals(-3f, f.decode(0b1101, p, 0));
        // FP AdaRound's per-element step s
        assertEquals(1.0, f.step(2.9f, p, 0));
        assertEquals(0.5, f.step(0.3f, p, 0));
        assertEquals(2.0, f.step(5f, p, 0));
        assertEquals(2.0, f.step(50f, p, 0), "clipped to maxval first");
    }

    /** Positive values of ExMy at maxval from FP4DiT's formula, with b computed by Math.log (independent). */
    private static List<Double> referencePositive(int e, int m, double maxval) {
        double b = Math.pow(2, e) - Math.log(maxval) / Math.log(2) + Math.log(2 - Math.pow(2, -m)) / Math.log(2) - 1;
        List<Double> v = new ArrayList<>();
        for (int mant = 0; mant < (1 << m); mant++) v.add(mant * Math.pow(2, 1 - b - m));            // subnormals and 0
        for (int ex = 1; ex < (1 << e); ex++) {
            for (int mant = 0; mant < (1 << m); mant++) v.add(((1 << m) + mant) * Math.pow(2, ex - b - m));
        }
        return v;
    }

    @Test void namedGridsMatchThePaperFormula() {
        int[][] em = {{3, 0}, {1, 2}, {2, 1}, {2, 3}, {3, 2}, {4, 3}, {3, 4}, {5, 2}, {1, 6}, {6, 1}, {7, 0}};
        float[] maxvals = {1f, 6f, 0.37f, 448f, 3.3e-3f, 17.25f, 1e-20f, 3e30f};
        for (int[] c : em) {
            FpFormat f = FpFormat.of(c[0], c[1]);
            int bits = 1 + c[0] + c[1];
            for (float maxval : maxvals) {
                List<Double> ref = referencePositive(c[0], c[1], maxval);
                if (ref.get(1) < Float.MIN_NORMAL) continue;   // this grid is not representable in float (E7M0 at 1e-20)
                float[] g = f.grid(mv(maxval));
                String what = f.id() + " maxval " + maxval;
                assertEquals((1 << bits) - 1, g.length, what + ": distinct values (2^bits codes, +-0 collapsed)");
                assertEquals(maxval, g[g.length - 1], what + ": the largest code is maxval");
                for (int i = 0; i < g.length; i++) assertEquals(0f - g[g.length - 1 - i], g[i], what + ": symmetric");
                int half = g.length / 2;
                assertEquals(0f, g[half]);
                for (int i = 0; i < ref.size(); i++) {
                    double r = ref.get(i);
                    float got = g[half + i];
                    assertEquals(r, got, Math.max(2 * Math.ulp(got), 1e-300), what + ": value " + i);
                }
                // subnormals: positive values below the smallest normal 2^(1-b)
                double minNormal = ref.get(1 << c[1]);
                int sub = 0;
                for (int i = half + 1; i < g.length; i++) if (g[i] < minNormal * (1 - 1e-6)) sub++;
                assertEquals((1 << c[1]) - 1, sub, what + ": subnormal count");
                assertEquals((1 << c[1]) - 1, f.subnormalCount());
            }
        }
    }

    @Test void integerBiasGridsAreExactPowersOfTwoScaled() {
        // E4M3 with maxval 480 has b = 7: the IEEE-like grid with bias 7 and no inf/NaN codes
        FpFormat f = FpFormat.of(4, 3);
        assertEquals(7.0, f.bias(480f), 1e-12);
        float[] g = f.grid(mv(480f));
        assertEquals((float) Math.scalb(1.0, -9), g[g.length / 2 + 1], "smallest subnormal 2^-9");
        assertEquals(0.015625f, g[g.length / 2 + 8], "smallest normal 2^-6");
        assertEquals(448f, g[g.length - 2]);
        // E3M0 with maxval 16: b = 4 - 4 + 0 - 1 = ... values 2^(e-b): {0, 0.25, 0.5, 1, 2, 4, 8, 16}
        FpFormat e3m0 = FpFormat.of(3, 0);
        assertArrayEquals(new float[] {0, 0.25f, 0.5f, 1, 2, 4, 8, 16},
                java.util.Arrays.copyOfRange(e3m0.grid(mv(16f)), 7, 15));
        // E1M2 with maxval 3.5: b = 2 - log2(3.5) + log2(1.75) - 1 = 0: {0, .5, 1, 1.5, 2, 2.5, 3, 3.5}
        assertArrayEquals(new float[] {0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f},
                java.util.Arrays.copyOfRange(FpFormat.of(1, 2).grid(mv(3.5f)), 7, 15));
    }

    @Test void everyGridPointQuantizesToItselfBitExactly() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (String name : NumberFormat.allNames()) {
            if (!(NumberFormat.parse(name) instanceof FpFormat f)) continue;
            for (int t = 0; t < 6; t++) {
                float maxval = t == 0 ? 6f : (float) Math.exp(rnd.nextDouble(-30, 30));
                QuantParams p = mv(maxval);
                float[] g = f.grid(p);
                float[] out = new float[g.length];
                f.fakeQuant(g, 0, out, 0, g.length, p, 0);
                for (int i = 0; i < g.length; i++) {
                    assertEquals(Float.floatToIntBits(g[i]), Float.floatToIntBits(out[i]), name + " maxval " + maxval + " point " + g[i]);
                    assertEquals(g[i], f.decode(f.encode(g[i], p, 0), p, 0), name + " code round trip " + g[i]);
                }
            }
        }
    }

    @Test void unsignedAndAllSubnormalVariants() {
        FpFormat u = FpFormat.of(2, 1).toUnsigned();
        assertEquals("ufp4-e3m1", u.id());
        assertEquals(4, u.codeBits());
        assertFalse(u.signed());
        float[] g = u.grid(mv(1f));
        assertEquals(16, g.length);
        assertEquals(0f, g[0]);
        assertEquals(1f, g[15]);
        assertEquals(0f, u.fakeQuant(-0.7f, mv(1f), 0));
        assertEquals(Float.floatToIntBits(0f), Float.floatToIntBits(u.fakeQuant(-0f, mv(1f), 0)));
        // E3M1 unsigned at maxval 1: largest 1.5 * 2^(7-b) = 1, smallest normal 2^(1-b) = 1/96
        assertEquals(1.0 / 96, g[2], 1e-9);

        FpFormat e0 = FpFormat.of(0, 3);
        assertEquals("fp4-e0m3", e0.id());
        float[] g0 = e0.grid(mv(7f));
        assertArrayEquals(new float[] {-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7}, g0);
        assertEquals(2f, e0.fakeQuant(2.5f, mv(7f), 0), "tie to even");
        assertEquals(4f, e0.fakeQuant(3.5f, mv(7f), 0), "tie to even");
    }

    @Test void zeroMaxvalQuantizesToZero() {
        FpFormat f = FpFormat.of(3, 2);
        assertEquals(0f, f.fakeQuant(3f, mv(0f), 0));
        assertArrayEquals(new float[] {0f}, f.grid(mv(0f)));
    }

    /**
     * Nearest-point property against exact arithmetic: the real grid is ±w_k · maxval / w_max (w_k the bias-0 values),
     * and |x - w_k maxval / w_max| compares as |x w_max - w_k maxval|, all dyadic, so BigDecimal is exact. Ties (x
     * exactly between two grid points) must pick the even multiple of the local step.
     */
    @Test void fakeQuantIsTheNearestRealGridPoint() {
        SplittableRandom rnd = new SplittableRandom(5);
        int[][] em = {{2, 1}, {3, 0}, {1, 2}, {2, 3}, {3, 2}, {4, 3}, {0, 3}};
        for (int[] c : em) {
            FpFormat f = FpFormat.of(c[0], c[1]);
            MiniFloat mf = new MiniFloat(c[0], c[1], (1 << (c[0] + c[1])) - 1);
            int nMag = mf.maxMag + 1;
            for (int t = 0; t < 4; t++) {
                float maxval = t == 0 ? 6f : (float) Math.exp(rnd.nextDouble(-8, 8));
                QuantParams p = mv(maxval);
                BigDecimal bm = new BigDecimal(maxval), bw = new BigDecimal(mf.maxW);
                List<Float> xs = new ArrayList<>();
                for (int i = 0; i < 400; i++) xs.add((float) (rnd.nextGaussian() * maxval * 0.6));
                // exact midpoints between neighbouring grid values, where representable as a float
                for (int k = 0; k + 1 < nMag; k++) {
                    BigDecimal mid = new BigDecimal(mf.decodeMag(k) + mf.decodeMag(k + 1)).multiply(bm)
                            .divide(bw.multiply(BigDecimal.valueOf(2)), java.math.MathContext.DECIMAL128);
                    float fm = mid.floatValue();
                    if (new BigDecimal(fm).multiply(bw).multiply(BigDecimal.valueOf(2))
                            .compareTo(new BigDecimal(mf.decodeMag(k) + mf.decodeMag(k + 1)).multiply(bm)) == 0) xs.add(fm);
                }
                for (float x : xs) {
                    float got = f.fakeQuant(x, p, 0);
                    double a = Math.min(Math.abs((double) x), maxval);
                    BigDecimal ax = new BigDecimal(a).multiply(bw);
                    int best = -1, second = -1;
                    BigDecimal bestD = null;
                    for (int k = 0; k < nMag; k++) {
                        BigDecimal d = ax.subtract(new BigDecimal(mf.decodeMag(k)).multiply(bm)).abs();
                        int cmp = bestD == null ? -1 : d.compareTo(bestD);
                        if (cmp < 0) { best = k; bestD = d; second = -1; }
                        else if (cmp == 0) second = k;
                    }
                    int pick = best;
                    if (second >= 0) {
                        // tie: the even multiple of the spacing between the two candidates
                        double step = mf.decodeMag(second) - mf.decodeMag(best);
                        double q = mf.decodeMag(best) / step;
                        pick = (((long) q) % 2 == 0) ? best : second;
                    }
                    float want = (float) (mf.decodeMag(pick) * maxval / mf.maxW);
                    want = Math.copySign(want, x);
                    assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(got),
                            f.id() + " maxval " + maxval + " x " + x + (second >= 0 ? " (tie)" : ""));
                }
            }
        }
    }
}
