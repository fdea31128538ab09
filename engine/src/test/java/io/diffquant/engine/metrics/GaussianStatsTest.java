package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** GaussianStats: numpy.cov semantics (N-1), a plain two-pass reference, the streaming accumulator, flat arrays. */
class GaussianStatsTest {
    private static float[][] randomFeatures(Random r, int n, int d, double offset) {
        float[][] f = new float[n][d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++)
            f[i][j] = (float) (offset + (j % 3 + 1) * r.nextGaussian() + (j > 0 ? 0.5 * f[i][j - 1] : 0));
        return f;
    }

    /** Two-pass reference, straight from the definition, element by element. */
    private static double[][] referenceCovariance(float[][] f, double[] mean) {
        int n = f.length, d = f[0].length;
        double[][] c = new double[d][d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) {
            double s = 0;
            for (float[] row : f) s += (row[i] - mean[i]) * (row[j] - mean[j]);
            c[i][j] = s / (n - 1);
        }
        return c;
    }

    private static double[] referenceMean(float[][] f) {
        double[] m = new double[f[0].length];
        for (float[] row : f) for (int j = 0; j < m.length; j++) m[j] += row[j];
        for (int j = 0; j < m.length; j++) m[j] /= f.length;
        return m;
    }

    @Test void smallExampleByHand() {
        // x = (1, 3, 5), y = (2, 4, 9): means 3 and 5; var x = 8/2 = 4, var y = 26/2 = 13, cov = 14/2 = 7 (numpy.cov)
        GaussianStats g = GaussianStats.fit(new float[][] {{1, 2}, {3, 4}, {5, 9}});
        assertArrayEquals(new double[] {3, 5}, g.mean(), 0);
        assertArrayEquals(new double[][] {{4, 7}, {7, 13}}, g.covariance());
        assertEquals(3, g.count());
        assertEquals(2, g.dimension());
    }

    @Test void fitMatchesTwoPassReference() {
        Random r = new Random(31);
        float[][] f = randomFeatures(r, 300, 40, 2.0); // 300 rows: crosses the 128-row blocks
        GaussianStats g = GaussianStats.fit(f);
        double[] mean = referenceMean(f);
        double[][] cov = referenceCovariance(f, mean);
        assertArrayEquals(mean, g.mean(), 1e-13);
        double[][] got = g.covariance();
        for (int i = 0; i < 40; i++) for (int j = 0; j < 40; j++) {
            assertEquals(cov[i][j], got[i][j], 1e-12 * (1 + Math.abs(cov[i][j])), "(" + i + ", " + j + ")");
            assertEquals(got[i][j], got[j][i], 0.0, "symmetric");
        }
        // the tensor overload is the same computation
        float[] flat = new float[300 * 40];
        for (int i = 0; i < 300; i++) System.arraycopy(f[i], 0, flat, i * 40, 40);
        assertEquals(g, GaussianStats.fit(Tensor.of(flat, 300, 40)));
    }

    @Test void accumulatorMatchesFitEvenFarFromTheOrigin() {
        Random r = new Random(32);
        // features centred at 1000 with unit-ish spread: a naive one-pass Σx² - (Σx)²/n would lose ~6 digits
        float[][] f = randomFeatures(r, 517, 24, 1000.0);
        GaussianStats ref = GaussianStats.fit(f);
        GaussianStats.Accumulator acc = new GaussianStats.Accumulator();
        float[] flat = new float[200 * 24];
        for (int i = 0; i < 200; i++) System.arraycopy(f[i], 0, flat, i * 24, 24);
        acc.add(Tensor.of(flat, 200, 24));
        for (int i = 200; i < 517; i++) acc.add(f[i]);
        assertEquals(517, acc.count());
        GaussianStats g = acc.toStats();
        assertEquals(517, g.count());
        assertArrayEquals(ref.mean(), g.mean(), 1e-10);
        double[][] a = ref.covariance(), b = g.covariance();
        for (int i = 0; i < 24; i++) assertArrayEquals(a[i], b[i], 1e-9 * Linalg.maxAbs(a));
    }

    @Test void flatArraysRoundTrip() {
        Random r = new Random(33);
        GaussianStats g = GaussianStats.fit(randomFeatures(r, 50, 6, 0.3));
        Map<String, double[]> arrays = g.toArrays();
        assertEquals(6, arrays.get(GaussianStats.MEAN_KEY).length);
        assertEquals(36, arrays.get(GaussianStats.COVARIANCE_KEY).length);
        assertArrayEquals(new int[] {6}, g.meanShape());
        assertArrayEquals(new int[] {6, 6}, g.covarianceShape());
        double[] flat = g.covarianceFlat();
        assertEquals(g.covariance()[2][5], flat[2 * 6 + 5], 0.0);
        assertEquals(g, GaussianStats.fromArrays(arrays, 50));
        Map<String, float[]> floats = g.toFloatArrays();
        GaussianStats back = GaussianStats.fromFloatArrays(floats.get("mu"), floats.get("sigma"), 50);
        assertArrayEquals(g.mean(), back.mean(), 1e-6);
        for (int i = 0; i < 6; i++) assertArrayEquals(g.covariance()[i], back.covariance()[i], 1e-6);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GaussianStats.fromArrays(new double[3], new double[8], 0));
        assertTrue(e.getMessage().contains("sigma") && e.getMessage().contains("9"), e.getMessage());
    }

    @Test void immutable() {
        double[] mu = {1, 2};
        double[][] cov = {{1, 0}, {0, 1}};
        GaussianStats g = new GaussianStats(mu, cov, 10);
        mu[0] = 99;
        cov[0][0] = 99;
        g.mean()[1] = 99;
        g.covariance()[1][1] = 99;
        assertArrayEquals(new double[] {1, 2}, g.mean(), 0);
        assertArrayEquals(new double[][] {{1, 0}, {0, 1}}, g.covariance());
    }

    @Test void rejectsBadInput() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GaussianStats.fit(new float[][] {{1, 2}}));
        assertTrue(e.getMessage().contains("at least 2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GaussianStats.fit(new float[][] {{1, 2}, {3}}));
        assertTrue(e.getMessage().contains("feature vector 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> GaussianStats.fit(new float[][] {{1, 2}, {3, Float.NaN}}));
        assertTrue(e.getMessage().contains("non-finite"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> new GaussianStats(new double[3], Linalg.identity(2), 5));
        assertTrue(e.getMessage().contains("3 entries"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> new GaussianStats.Accumulator().add(new float[] {1}).toStats());
    }
}
