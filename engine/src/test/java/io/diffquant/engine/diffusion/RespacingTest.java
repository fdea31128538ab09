package io.diffquant.engine.diffusion;

import org.junit.jupiter.api.Test;

import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

class RespacingTest {

    @Test
    void ddimUsesFixedIntegerStride() {
        assertArrayEquals(new int[] {0, 100, 200, 300, 400, 500, 600, 700, 800, 900}, Respacing.spaceTimesteps(1000, "ddim10"));
        assertArrayEquals(IntStream.range(0, 25).map(i -> 40 * i).toArray(), Respacing.spaceTimesteps(1000, "ddim25"));
        assertArrayEquals(IntStream.range(0, 50).map(i -> 20 * i).toArray(), Respacing.spaceTimesteps(1000, "ddim50"));
        // ADM takes the FIRST stride giving exactly N: for N=3 that is 334 (1000 // 3 = 333 would give 4 steps)
        assertArrayEquals(new int[] {0, 334, 668}, Respacing.spaceTimesteps(1000, "ddim3"));
        assertArrayEquals(IntStream.range(0, 1000).toArray(), Respacing.spaceTimesteps(1000, "ddim1000"));
    }

    @Test
    void sectionCountsFollowAdm() {
        // "10": one section of 1000, frac stride 999/9 = 111 -> k*111
        assertArrayEquals(IntStream.range(0, 10).map(i -> 111 * i).toArray(), Respacing.spaceTimesteps(1000, "10"));
        // "7": frac stride 999/6 = 166.5; Python round() is half-to-even: 166.5->166, 499.5->500, 832.5->832
        assertArrayEquals(new int[] {0, 166, 333, 500, 666, 832, 999}, Respacing.spaceTimesteps(1000, "7"));
        // "1,2,3": sections of 334, 333, 333 -> [0], [334, 334+332], [667, 667+166, 667+332]
        assertArrayEquals(new int[] {0, 334, 666, 667, 833, 999}, Respacing.spaceTimesteps(1000, "1,2,3"));
        // ADM's docstring example: T = 300, "10,15,20" (reference list from ADM's algorithm)
        int[] expected = {0, 11, 22, 33, 44, 55, 66, 77, 88, 99, 100, 107, 114, 121, 128, 135, 142, 149, 157, 164, 171,
                178, 185, 192, 199, 200, 205, 210, 216, 221, 226, 231, 236, 242, 247, 252, 257, 263, 268, 273, 278, 283, 289,
                294, 299};
        assertArrayEquals(expected, Respacing.spaceTimesteps(300, "10,15,20"));
        assertArrayEquals(expected, Respacing.spaceTimesteps(300, 10, 15, 20));
        int[] s250 = Respacing.spaceTimesteps(1000, "250");
        assertEquals(250, s250.length);
        assertEquals(0, s250[0]);
        assertEquals(999, s250[249]);
        assertArrayEquals(new int[] {0, 4, 8, 12, 16, 20, 24, 28}, java.util.Arrays.copyOf(s250, 8));
        int[] s100 = Respacing.spaceTimesteps(1000, "100");
        assertArrayEquals(new int[] {0, 10, 20, 30, 40, 50, 61, 71}, java.util.Arrays.copyOf(s100, 8));
        assertArrayEquals(IntStream.range(0, 1000).toArray(), Respacing.spaceTimesteps(1000, ""));
        assertArrayEquals(IntStream.range(0, 1000).toArray(), Respacing.spaceTimesteps(1000, (String) null));
    }

    @Test
    void invalidSpecsAreRejected() {
        for (String bad : new String[] {"ddim999", "ddim0", "ddim", "ddimx", "abc", "10,x", "2000", "-5", "ddim1", "10,,5", "1001"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Respacing.spaceTimesteps(1000, bad), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Respacing.spaceTimesteps(0, "10"));
    }

    @Test
    void respacedScheduleRecomputesBetasFromKeptAlphas() {
        NoiseSchedule base = NoiseSchedule.linear(1000);
        RespacedSchedule r = Respacing.respace(base, "ddim10");
        assertEquals(10, r.size());
        assertEquals("ddim10", r.spec());
        double last = 1;
        for (int k = 0; k < 10; k++) {
            assertEquals(100 * k, r.timestep(k));
            assertEquals(k, r.indexOf(100 * k));
            double ac = base.alphaCumprod(100 * k);
            assertEquals(1 - ac / last, r.spaced().beta(k), 1e-17, "spaced beta " + k);
            assertEquals(ac, r.spaced().alphaCumprod(k), ac * 1e-14, "kept abar " + k);
            assertEquals(last, r.spaced().alphaCumprodPrev(k), last * 1e-14, "abar prev " + k);
            last = ac;
        }
        assertEquals(-1, r.indexOf(150));
        // numpy values of ADM's SpacedDiffusion constants for ddim10
        assertEquals(0.8207358246806835, r.spaced().beta(9), 1e-15);
        assertEquals(0.00027024451955826425, r.spaced().alphaCumprod(9), 1e-18);
        assertEquals(-0.19879237139831668, r.spaced().posteriorLogVarianceClipped(9), 1e-14);
        assertEquals(-9.211194488963333, r.spaced().posteriorLogVarianceClipped(0), 1e-13);
        assertEquals(0.42287200340654674, r.spaced().posteriorMeanCoef2(9), 1e-14);
        assertEquals(0.031875166798809716, r.spaced().posteriorMeanCoef1(9), 1e-15);
        // a full-length respacing reproduces the base schedule
        RespacedSchedule all = Respacing.respace(base, "");
        for (int i = 0; i < 1000; i += 111) assertEquals(base.alphaCumprod(i), all.spaced().alphaCumprod(i), 1e-15);
    }
}
