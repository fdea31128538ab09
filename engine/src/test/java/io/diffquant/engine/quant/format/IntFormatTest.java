package io.diffquant.engine.quant.format;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Uniform integer formats (Q-Diffusion UniformAffineQuantizer semantics, ALGORITHMS.md §3). */
class IntFormatTest {

    @Test void asymmetricHandCase() {
        IntFormat f = IntFormat.asymmetric(4);
        QuantParams p = f.paramsForRange(new float[] {-1.5f}, new float[] {6f});
        assertEquals(0.5f, p.scale(0));           // 7.5 / 15
        assertEquals(3, p.zeroPoint(0));          // round(1.5 / 0.5)
        float[][] cases = {{0.25f, 0f}, {0.75f, 1f}, {-1.75f, -1.5f}, {7f, 6f}, {-9f, -1.5f}, {2.2f, 2f}, {1.25f, 1f}, {1.75f, 2f}};
        for (float[] c : cases) assertEquals(c[1], f.fakeQuant(c[0], p, 0), "x = " + c[0]);
        assertEquals(3, f.encode(0f, p, 0));
        assertEquals(0, f.encode(-1.5f, p, 0));
        assertEquals(15, f.encode(6f, p, 0));
        assertEquals(16, f.grid(p).length);
        assertEquals(-1.5f, f.grid(p)[0]);
        assertEquals(6f, f.grid(p)[15]);
    }

    @Test void asymmetricRangeEndsMapToEndCodesAndZeroIsExact() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (int b = 2; b <= 8; b++) {
            IntFormat f = IntFormat.asymmetric(b);
            int top = (1 << b) - 1;
            for (int t = 0; t < 200; t++) {
                float lo = (float) -Math.abs(rnd.nextGaussian() * 3), hi = (float) Math.abs(rnd.nextGaussian() * 3);
                QuantParams p = f.paramsForRange(new float[] {lo}, new float[] {hi});
                int z = p.zeroPoint(0);
                assertTrue(z >= 0 && z <= top);
                assertEquals(0, f.encode(lo, p, 0), "min maps to code 0");
                int cmax = f.encode(hi, p, 0);
                assertTrue(cmax == top || cmax == top - 1, "max maps to the top code within rounding, got " + cmax);
                assertEquals(z, f.encode(0f, p, 0));
                assertEquals(0f, f.fakeQuant(0f, p, 0), "zero exactly representable");
                assertEquals(0f, f.decode(z, p, 0));
            }
            // all-positive range: widened to include 0
            QuantParams p = f.paramsForRange(new float[] {2f}, new float[] {5f});
            assertEquals(0, p.zeroPoint(0));
            assertEquals(0f, f.fakeQuant(0f, p, 0));
            assertEquals(5f, f.fakeQuant(5f, p, 0), 5e-7f);
        }
    }

    @Test void symmetricCodesAndFullRange() {
        for (int b = 2; b <= 8; b++) {
            int qmax = (1 << (b - 1)) - 1;
            IntFormat s = IntFormat.symmetric(b), full = IntFormat.symmetricFullRange(b);
            QuantParams p = s.paramsForRange(new float[] {-2f}, new float[] {1f});
            assertEquals((float) (2.0 / qmax), p.scale(0));
            assertFalse(p.hasZeroPoints());
            assertEquals(qmax, s.levelOfCode(s.encode(5f, p, 0)));
            assertEquals(-qmax, s.levelOfCode(s.encode(-5f, p, 0)));
            assertEquals(((1 << b) - qmax) & ((1 << b) - 1), s.encode(-5f, p, 0), "two's complement code");
            assertEquals(-qmax - 1, full.levelOfCode(full.encode(-5f, p, 0)), "full range reaches -2^(b-1)");
            assertEquals((1 << b) - 1, s.grid(p).length);
            assertEquals(1 << b, full.grid(p).length);
            assertEquals(0f, s.fakeQuant(-0.1f * p.scale(0), p, 0));
        }
        IntFormat u = IntFormat.unsigned(4);
        QuantParams p = u.paramsForRange(new float[] {-3f}, new float[] {1.5f});
        assertEquals(0.1f, p.scale(0));
        assertEquals(0f, u.fakeQuant(-1f, p, 0));
        assertEquals(15, u.encode(9f, p, 0));
        assertEquals(16, u.grid(p).length);
    }

    @Test void zeroStepAndNaN() {
        IntFormat f = IntFormat.asymmetric(4);
        QuantParams p = f.paramsForRange(new float[] {0f}, new float[] {0f});
        assertEquals(0f, p.scale(0));
        assertEquals(0f, f.fakeQuant(3f, p, 0));
        assertTrue(Float.isNaN(f.fakeQuant(Float.NaN, p, 0)));
        QuantParams q = f.paramsForRange(new float[] {-1f}, new float[] {1f});
        assertTrue(Float.isNaN(f.fakeQuant(Float.NaN, q, 0)));
        float[] g = f.grid(q);
        assertEquals(g[g.length - 1], f.fakeQuant(Float.POSITIVE_INFINITY, q, 0), "+inf saturates to the top level");
        assertEquals(g[0], f.fakeQuant(Float.NEGATIVE_INFINITY, q, 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.encode(Float.NaN, q, 0));
        assertTrue(e.getMessage().contains("int4-asym"));
        assertThrows(IllegalArgumentException.class, () -> f.checkParams(QuantParams.of(1f)));
        assertThrows(IllegalArgumentException.class, () -> f.checkParams(QuantParams.of(new float[] {1f}, new int[] {16})));
    }

    /** Exact nearest-point check: grid Δ (q - z), distances in BigDecimal; ties pick an even (q - z). */
    @Test void fakeQuantIsTheNearestGridPoint() {
        SplittableRandom rnd = new SplittableRandom(9);
        for (IntFormat.Kind k : IntFormat.Kind.values()) {
            for (int b : new int[] {2, 3, 4, 6, 8}) {
                IntFormat f = new IntFormat(b, k);
                for (int t = 0; t < 4; t++) {
                    float lo = (float) (-Math.abs(rnd.nextGaussian())), hi = (float) Math.abs(rnd.nextGaussian());
                    QuantParams p = f.paramsForRange(new float[] {lo}, new float[] {hi});
                    int z = p.zeroPoint(0);
                    BigDecimal d = new BigDecimal(p.scale(0));
                    for (int i = 0; i < 120; i++) {
                        float x = (float) (rnd.nextGaussian() * 1.3);
                        if (i % 10 == 0) x = (float) ((rnd.nextInt(-20, 20) + 0.5) * p.scale(0));  // near/exact midpoints
                        BigDecimal bx = new BigDecimal(x);
                        int best = 0;
                        BigDecimal bestD = null;
                        boolean tie = false;
                        for (int q = f.qmin(); q <= f.qmax(); q++) {
                            BigDecimal dist = bx.subtract(d.multiply(BigDecimal.valueOf(q - z))).abs();
                            int c = bestD == null ? -1 : dist.compareTo(bestD);
                            if (c < 0) { best = q; bestD = dist; tie = false; }
                            else if (c == 0) { tie = true; if (((q - z) & 1) == 0) best = q; }
                        }
                        float want = (float) ((double) (best - z) * p.scale(0));
                        assertEquals(want, f.fakeQuant(x, p, 0), f.id() + " x " + x + (tie ? " (tie)" : ""));
                        assertEquals(want, f.decode(f.encode(x, p, 0), p, 0));
                    }
                }
            }
        }
    }
}
