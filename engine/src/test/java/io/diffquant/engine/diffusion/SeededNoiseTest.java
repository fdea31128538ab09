package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class SeededNoiseTest {

    @Test
    void standardNormalMoments() {
        SeededNoise g = new SeededNoise(42);
        Tensor t = g.normal(SeededNoise.STREAM_INITIAL, 0, -1, 4, 4, 64, 64); // 65536 values
        double s1 = 0, s2 = 0, s4 = 0;
        int over2 = 0;
        for (float v : t.data()) {
            s1 += v;
            s2 += (double) v * v;
            s4 += (double) v * v * v * v;
            if (Math.abs(v) > 1.959964) over2++;
        }
        int n = t.size();
        double mean = s1 / n, var = s2 / n - mean * mean;
        // standard errors: mean 1/sqrt(n) = 0.004, var sqrt(2/n) = 0.0055, kurtosis sqrt(96/n) = 0.04
        assertEquals(0, mean, 0.02, "mean");
        assertEquals(1, var, 0.03, "variance");
        assertEquals(3, s4 / n, 0.2, "fourth moment");
        assertEquals(0.05, (double) over2 / n, 0.005, "two-sided 5% tail");
    }

    @Test
    void keyedByEveryCoordinate() {
        SeededNoise g = new SeededNoise(7);
        float[] a = new float[16], b = new float[16];
        g.fill(1, 3, 900, a, 0, 16);
        g.fill(1, 3, 900, b, 0, 16);
        assertArrayEquals(a, b, "same key, same values");
        float[][] others = new float[4][16];
        new SeededNoise(8).fill(1, 3, 900, others[0], 0, 16);
        g.fill(0, 3, 900, others[1], 0, 16);
        g.fill(1, 4, 900, others[2], 0, 16);
        g.fill(1, 3, 800, others[3], 0, 16);
        for (float[] o : others) {
            int same = 0;
            for (int i = 0; i < 16; i++) if (o[i] == a[i]) same++;
            assertEquals(0, same, "a different seed/stream/sample/step gives different values");
        }
        for (int i = 0; i < 16; i++) assertEquals(a[i], g.value(1, 3, 900, i), 0f, "element " + i);
        // a fill that starts at an offset inside a buffer writes the same sequence
        float[] big = new float[20];
        g.fill(1, 3, 900, big, 4, 16);
        assertArrayEquals(a, Arrays.copyOfRange(big, 4, 20));
    }

    @Test
    void sampleNoiseIndependentOfBatchAndThreads() {
        SeededNoise g = new SeededNoise(123);
        int saved = Parallel.threads();
        try {
            Parallel.setThreads(1);
            Tensor one = g.normal(SeededNoise.STREAM_STEP, 0, 500, 4, 3, 37, 41); // odd per-sample size
            Parallel.setThreads(2);
            Tensor two = g.normal(SeededNoise.STREAM_STEP, 0, 500, 4, 3, 37, 41);
            assertArrayEquals(one.data(), two.data(), "thread count must not change the noise");
            Tensor firstTwo = g.normal(SeededNoise.STREAM_STEP, 0, 500, 2, 3, 37, 41);
            assertArrayEquals(one.sliceRows(0, 2).data(), firstTwo.data(), "sample i does not depend on N");
            Tensor lastTwo = g.normal(SeededNoise.STREAM_STEP, 2, 500, 2, 3, 37, 41);
            assertArrayEquals(one.sliceRows(2, 4).data(), lastTwo.data(), "firstSample offsets the sample index");
            int per = 3 * 37 * 41;
            for (int s = 0; s < 4; s++) {
                float[] ref = new float[per];
                g.fill(SeededNoise.STREAM_STEP, s, 500, ref, 0, per);
                assertArrayEquals(ref, one.sliceRows(s, s + 1).data(), "parallel chunks == sequential fill, sample " + s);
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }
}
