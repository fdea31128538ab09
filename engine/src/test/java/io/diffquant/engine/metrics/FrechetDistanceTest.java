package io.diffquant.engine.metrics;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Fréchet distance against closed forms: equal, shifted, diagonal, commuting and a hand-derived non-commuting case. */
class FrechetDistanceTest {
    private static double[] randomVector(Random r, int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = scale * r.nextGaussian();
        return v;
    }

    private static double squaredDistance(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
        return s;
    }

    /** A random orthogonal matrix: the eigenvectors of a random symmetric matrix (rows). */
    private static double[][] randomRotation(Random r, int n) {
        return Linalg.eigh(LinalgTest.randomSymmetric(r, n)).vectors();
    }

    /** Qᵀ diag(d) Q for Q with orthonormal rows. */
    private static double[][] rotated(double[][] q, double[] d) {
        int n = d.length;
        double[][] out = new double[n][n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += q[k][i] * d[k] * q[k][j];
            out[i][j] = s;
        }
        Linalg.symmetrizeInPlace(out);
        return out;
    }

    @Test void identicalGaussiansAreAtDistanceZero() {
        Random r = new Random(21);
        double[][] c = LinalgTest.randomCovariance(r, 48, 100);
        double[] mu = randomVector(r, 48, 3);
        double fd = FrechetDistance.compute(mu, c, mu.clone(), Linalg.copy(c));
        assertEquals(0.0, fd, 1e-10 * Linalg.trace(c));
        // also for a rank-deficient covariance (fewer samples than dimensions), where scipy's sqrtm struggles
        double[][] singular = LinalgTest.randomCovariance(r, 64, 10);
        assertEquals(0.0, FrechetDistance.compute(mu = randomVector(r, 64, 1), singular, mu, singular),
                1e-9 * Linalg.trace(singular));
    }

    @Test void sameCovarianceShiftedMeansGivesSquaredMeanDistance() {
        Random r = new Random(22);
        double[][] c = LinalgTest.randomCovariance(r, 32, 80);
        double[] mu1 = randomVector(r, 32, 1), mu2 = randomVector(r, 32, 1);
        double expected = squaredDistance(mu1, mu2);
        assertEquals(expected, FrechetDistance.compute(mu1, c, mu2, c), 1e-10 * (expected + Linalg.trace(c)));
    }

    @Test void diagonalCovariances() {
        Random r = new Random(23);
        int n = 20;
        double[] a = new double[n], b = new double[n];
        double[][] sa = new double[n][n], sb = new double[n][n];
        double expected = 0;
        for (int i = 0; i < n; i++) {
            a[i] = 0.1 + 5 * r.nextDouble();
            b[i] = i == 3 ? 0.0 : 0.1 + 5 * r.nextDouble(); // one zero variance
            sa[i][i] = a[i];
            sb[i][i] = b[i];
            expected += Math.pow(Math.sqrt(a[i]) - Math.sqrt(b[i]), 2);
        }
        double[] mu1 = randomVector(r, n, 2), mu2 = randomVector(r, n, 2);
        expected += squaredDistance(mu1, mu2);
        assertEquals(expected, FrechetDistance.compute(mu1, sa, mu2, sb), 1e-12 * expected);
    }

    @Test void commutingCovariancesInARandomBasis() {
        Random r = new Random(24);
        for (int n : new int[] {3, 17, 64, 256}) {
            double[][] q = randomRotation(r, n);
            double[] a = new double[n], b = new double[n];
            double expected = 0;
            for (int i = 0; i < n; i++) {
                a[i] = r.nextDouble() * 4;
                b[i] = r.nextDouble() * 4;
                expected += Math.pow(Math.sqrt(a[i]) - Math.sqrt(b[i]), 2);
            }
            double[] mu1 = randomVector(r, n, 1), mu2 = randomVector(r, n, 1);
            expected += squaredDistance(mu1, mu2);
            double fd = FrechetDistance.compute(mu1, rotated(q, a), mu2, rotated(q, b));
            assertEquals(expected, fd, 1e-10 * expected, "n = " + n);
        }
    }

    @Test void nonCommutingTwoByTwoByHand() {
        // S1 = [[2, 1], [1, 2]], S2 = [[1, 0], [0, 3]]: S1 S2 = [[2, 3], [1, 6]] has trace 8 and determinant 9.
        // For a 2x2 matrix with non-negative eigenvalues, (Tr sqrt M)² = tr M + 2 sqrt(det M), so
        // Tr (S1 S2)^½ = sqrt(8 + 2·3) = sqrt(14); FD = tr S1 + tr S2 - 2 sqrt(14) + ||Δμ||².
        double[][] s1 = {{2, 1}, {1, 2}}, s2 = {{1, 0}, {0, 3}};
        double[] mu1 = {0.5, -1}, mu2 = {1.5, 1}; // ||Δμ||² = 1 + 4
        double expected = 4 + 4 - 2 * Math.sqrt(14) + 5;
        assertEquals(expected, FrechetDistance.compute(mu1, s1, mu2, s2), 1e-14);
        assertEquals(Math.sqrt(14), FrechetDistance.traceSqrtProduct(s1, s2), 1e-14);
        // a second one with a singular factor: S2 = [[1, 1], [1, 1]] (det 0): Tr sqrt = sqrt(tr(S1 S2)) = sqrt(6)
        double[][] s3 = {{1, 1}, {1, 1}};
        assertEquals(Math.sqrt(6), FrechetDistance.traceSqrtProduct(s1, s3), 1e-14);
        assertEquals(Math.sqrt(6), FrechetDistance.traceSqrtProduct(s3, s1), 1e-14);
    }

    @Test void symmetricInItsArguments() {
        Random r = new Random(25);
        double[][] c1 = LinalgTest.randomCovariance(r, 64, 90), c2 = LinalgTest.randomCovariance(r, 64, 70);
        double[] mu1 = randomVector(r, 64, 0.5), mu2 = randomVector(r, 64, 0.5);
        double ab = FrechetDistance.compute(mu1, c1, mu2, c2), ba = FrechetDistance.compute(mu2, c2, mu1, c1);
        assertTrue(ab > 0);
        assertEquals(ab, ba, 1e-10 * ab);
        // the GaussianStats overload gives the same number
        GaussianStats g1 = new GaussianStats(mu1, c1, 90), g2 = new GaussianStats(mu2, c2, 70);
        assertEquals(ab, FrechetDistance.compute(g1, g2), 0);
    }

    @Test void fittedStatisticsOfTwoSamplesOfOneGaussianAreClose() {
        // FD between two 4000-sample fits of the same 8-dim Gaussian is small against FD to a shifted Gaussian
        Random r = new Random(26);
        float[][] x = new float[4000][8], y = new float[4000][8], z = new float[4000][8];
        for (int i = 0; i < 4000; i++) for (int j = 0; j < 8; j++) {
            x[i][j] = (float) r.nextGaussian();
            y[i][j] = (float) r.nextGaussian();
            z[i][j] = (float) (r.nextGaussian() + 1);
        }
        double same = FrechetDistance.compute(GaussianStats.fit(x), GaussianStats.fit(y));
        double shifted = FrechetDistance.compute(GaussianStats.fit(x), GaussianStats.fit(z));
        assertTrue(same < 0.05, "same distribution: " + same);
        assertEquals(8.0, shifted, 0.5);
    }

    @Test void acceptsFloat32LevelAsymmetry() {
        // covariances computed in float32 (e.g. Xᵀ X by a GEMM) can be asymmetric at ~1e-7 relative
        double[][] s1 = {{2, 1 + 1e-7}, {1, 2}}, s2 = {{1, 0}, {0, 3}};
        assertEquals(8 - 2 * Math.sqrt(14), FrechetDistance.compute(new double[2], s1, new double[2], s2), 1e-6);
        GaussianStats g = new GaussianStats(new double[2], s1, 0);
        assertEquals(g.covariance()[0][1], g.covariance()[1][0], 0.0, "stored symmetrised");
    }

    @Test void rejectsBadInput() {
        double[][] i2 = Linalg.identity(2), i3 = Linalg.identity(3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.compute(new double[2], i2, new double[3], i3));
        assertTrue(e.getMessage().contains("mu2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.compute(new double[2], i2, new double[2], i3));
        assertTrue(e.getMessage().contains("sigma2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.compute(new double[2], i2, new double[2], new double[][] {{1, 0}, {0, -1}}));
        assertTrue(e.getMessage().contains("sigma2") && e.getMessage().contains("positive semidefinite"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.compute(new double[] {0, Double.NaN}, i2, new double[2], i2));
        assertTrue(e.getMessage().contains("non-finite"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FrechetDistance.compute(new double[2], new double[][] {{1, 0.5}, {0, 1}}, new double[2], i2));
        assertTrue(e.getMessage().contains("sigma1") && e.getMessage().contains("symmetric"), e.getMessage());
    }
}
