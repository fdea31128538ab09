package io.diffquant.engine.metrics;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Linalg: eigendecompositions checked by reconstruction and orthonormality, square roots by squaring, analytic 2x2. */
class LinalgTest {
    static double[][] randomSymmetric(Random r, int n) {
        double[][] a = new double[n][n];
        for (int i = 0; i < n; i++) for (int j = 0; j <= i; j++) {
            double v = r.nextGaussian();
            a[i][j] = v;
            a[j][i] = v;
        }
        return a;
    }

    /** X Xᵀ / cols for an n x cols Gaussian X: PSD, rank min(n, cols). */
    static double[][] randomCovariance(Random r, int n, int cols) {
        double[][] x = new double[n][cols];
        for (double[] row : x) for (int j = 0; j < cols; j++) row[j] = r.nextGaussian();
        double[][] c = Linalg.multiply(x, Linalg.transpose(x));
        for (double[] row : c) for (int j = 0; j < n; j++) row[j] /= cols;
        Linalg.symmetrizeInPlace(c);
        return c;
    }

    /** Max |A - V diag(λ) Vᵀ| and max |V Vᵀ - I|, computed with plain loops. */
    static void assertDecomposes(double[][] a, Linalg.Eigen e, double tol) {
        int n = a.length;
        double[] l = e.values();
        double[][] v = e.vectors();
        for (int k = 1; k < n; k++) assertTrue(l[k - 1] <= l[k], "eigenvalues ascending at " + k);
        double scale = Math.max(1.0, Linalg.maxAbs(a));
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) {
            double s = 0, o = 0;
            for (int k = 0; k < n; k++) {
                s += l[k] * v[k][i] * v[k][j];
                o += v[i][k] * v[j][k];
            }
            assertEquals(a[i][j], s, tol * scale, "reconstruction at (" + i + ", " + j + ")");
            assertEquals(i == j ? 1.0 : 0.0, o, tol, "orthonormality at (" + i + ", " + j + ")");
        }
    }

    @Test void eighReconstructsRandomSymmetricMatrices() {
        Random r = new Random(11);
        for (int n : new int[] {1, 2, 3, 5, 17, 64, 130}) {
            double[][] a = randomSymmetric(r, n);
            double[][] before = Linalg.copy(a);
            assertDecomposes(a, Linalg.eigh(a), 1e-10);
            assertArrayEquals(before, a, "input must not be modified");
        }
    }

    @Test void eighHandlesRankDeficientAndDegenerateSpectra() {
        Random r = new Random(12);
        // 96-dim covariance from 20 samples: 76 eigenvalues are 0
        double[][] c = randomCovariance(r, 96, 20);
        Linalg.Eigen e = Linalg.eigh(c);
        assertDecomposes(c, e, 1e-10);
        int zeros = 0;
        for (double v : e.values()) if (Math.abs(v) < 1e-10) zeros++;
        assertEquals(76, zeros, "null space dimension");
        // identity (all eigenvalues equal) and the zero matrix
        assertDecomposes(Linalg.identity(40), Linalg.eigh(Linalg.identity(40)), 1e-12);
        double[][] z = new double[7][7];
        assertDecomposes(z, Linalg.eigh(z), 0);
        // diagonal with repeated entries: eigenvalues are the sorted diagonal
        double[][] d = new double[6][6];
        double[] diag = {3, -1, 3, 0, 2.5, -1};
        for (int i = 0; i < 6; i++) d[i][i] = diag[i];
        assertArrayEquals(new double[] {-1, -1, 0, 2.5, 3, 3}, Linalg.eigh(d).values(), 1e-15);
        // already tridiagonal, and tiny / huge scales
        double[][] t = new double[50][50];
        for (int i = 0; i < 50; i++) {
            t[i][i] = 2;
            if (i > 0) t[i][i - 1] = t[i - 1][i] = -1;
        }
        Linalg.Eigen te = Linalg.eigh(t);
        assertDecomposes(t, te, 1e-12);
        // closed form of the 1-D Laplacian: 2 - 2 cos(k pi / (n + 1))
        for (int k = 1; k <= 50; k++) assertEquals(2 - 2 * Math.cos(k * Math.PI / 51), te.values()[k - 1], 1e-13);
        for (double s : new double[] {1e-150, 1e150}) {
            double[][] a = randomSymmetric(r, 12);
            for (double[] row : a) for (int j = 0; j < 12; j++) row[j] *= s;
            Linalg.Eigen es = Linalg.eigh(a);
            double[][] back = es.compose(es.values());
            assertTrue(Linalg.frobeniusDistance(a, back) <= 1e-12 * s * 12, "scale " + s);
        }
    }

    @Test void eighOfLargeCovariance() {
        Random r = new Random(13);
        double[][] c = randomCovariance(r, 256, 300);
        assertDecomposes(c, Linalg.eigh(c), 1e-10);
        double[][] singular = randomCovariance(r, 256, 90);
        assertDecomposes(singular, Linalg.eigh(singular), 1e-10);
        double[] values = Linalg.eigvalsh(c);
        assertArrayEquals(Linalg.eigh(c).values(), values, 1e-12);
        double tr = 0;
        for (double v : values) tr += v;
        assertEquals(Linalg.trace(c), tr, 1e-10 * Math.abs(tr));
    }

    /**
     * A covariance in which most features are constant (exactly zero rows and columns), as the sFID features of fully
     * saturated images give: the QL sweeps did not converge on the whole matrix (392 dimensions, 345 of them constant);
     * the zero rows are split off. Checked: A v = λ v for every pair, orthonormal vectors, the eigenvalues of the
     * nonzero block plus zeros.
     */
    @Test void eighSplitsOffExactlyZeroRows() {
        Random r = new Random(5);
        int n = 60, live = 9;
        double[][] x = new double[40][n];
        int[] liveDims = new int[live];
        for (int k = 0; k < live; k++) liveDims[k] = 3 + 6 * k;
        for (double[] row : x) for (int k = 0; k < live; k++) row[liveDims[k]] = r.nextGaussian() * (k + 1) * 1e-3;
        double[][] a = new double[n][n];
        for (double[] row : x) for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) a[i][j] += row[i] * row[j] / x.length;
        Linalg.Eigen e = Linalg.eigh(a);
        double[][] block = new double[live][live];
        for (int i = 0; i < live; i++) for (int j = 0; j < live; j++) block[i][j] = a[liveDims[i]][liveDims[j]];
        double[] bv = Linalg.eigvalsh(block);
        int nonzero = 0;
        for (double v : e.values()) if (Math.abs(v) > 1e-18) nonzero++;
        assertEquals(live, nonzero, "the block's eigenvalues, then zeros");
        for (int k = 0; k < live; k++) assertEquals(bv[k], e.values()[n - live + k], 1e-15, "eigenvalue " + k);
        for (int k = 1; k < n; k++) assertTrue(e.values()[k - 1] <= e.values()[k], "ascending");
        for (int k = 0; k < n; k++) {
            double[] v = e.vectors()[k];
            for (int i = 0; i < n; i++) {
                double av = 0;
                for (int j = 0; j < n; j++) av += a[i][j] * v[j];
                assertEquals(e.values()[k] * v[i], av, 1e-15, "A v = λ v, pair " + k + ", row " + i);
            }
            for (int m = 0; m <= k; m++) {
                double dot = 0;
                for (int i = 0; i < n; i++) dot += v[i] * e.vectors()[m][i];
                assertEquals(m == k ? 1.0 : 0.0, dot, 1e-12, "orthonormal " + k + ", " + m);
            }
        }
    }

    /**
     * Regression: 250 fully saturated images (every pixel -1 or +1; what the diverged `rtn` W4A8 unet-fmnist sampled,
     * stored as bits in metrics/saturated-250x28x28.bits) give sFID features of which 364 of 392 are constant. Before
     * the zero rows were split off, eigh of their covariance stopped with "QL iteration did not converge".
     */
    @Test void eighOfTheSaturatedImagesSfidCovariance() throws Exception {
        byte[] bits;
        try (var in = LinalgTest.class.getResourceAsStream("/metrics/saturated-250x28x28.bits")) {
            assertNotNull(in, "fixture metrics/saturated-250x28x28.bits");
            bits = in.readAllBytes();
        }
        io.diffquant.engine.tensor.Tensor img = io.diffquant.engine.tensor.Tensor.zeros(250, 1, 28, 28);
        float[] d = img.data();
        assertEquals((d.length + 7) / 8, bits.length);
        for (int i = 0; i < d.length; i++) d[i] = (bits[i >> 3] >> (i & 7) & 1) != 0 ? 1f : -1f;
        FmnistMetrics m = FmnistMetrics.loadDefault();
        double[][] a = GaussianStats.fit(m.classifier().features(img).spatial()).covariance();
        int constant = 0;
        for (int i = 0; i < a.length; i++) if (a[i][i] == 0) constant++;
        assertEquals(364, constant, "constant sFID features of the fixture");
        Linalg.Eigen e = Linalg.eigh(a);
        double scale = 0;
        for (double[] row : a) for (double v : row) scale = Math.max(scale, Math.abs(v));
        for (int k = 0; k < a.length; k++) {
            double[] v = e.vectors()[k];
            for (int i = 0; i < a.length; i++) {
                double av = 0;
                for (int j = 0; j < a.length; j++) av += a[i][j] * v[j];
                assertEquals(e.values()[k] * v[i], av, 1e-12 * scale, "A v = λ v, pair " + k + ", row " + i);
            }
        }
        // and the metrics of those images now come out (FID-FMNIST and sFID-FMNIST finite, far from the real data)
        MetricsTable t = m.evaluate(img, null, null);
        for (MetricsTable.Row row : t.rows())
            if (row.metric().equals(MetricsTable.FID_FMNIST) || row.metric().equals(MetricsTable.SFID_FMNIST))
                assertTrue(Double.isFinite(row.value()) && row.value() > 10, row.metric() + " = " + row.value());
    }

    @Test void twoByTwoAnalytic() {
        // [[a, b], [b, c]]: λ = (a + c)/2 ± sqrt(((a - c)/2)² + b²)
        double a = 2, b = 1, c = -3;
        double m = (a + c) / 2, r = Math.sqrt((a - c) * (a - c) / 4 + b * b);
        Linalg.Eigen e = Linalg.eigh(new double[][] {{a, b}, {b, c}});
        assertArrayEquals(new double[] {m - r, m + r}, e.values(), 1e-14);
        // eigenvector of λ+ is proportional to (b, λ+ - a)
        double[] v = e.vectors()[1];
        assertEquals(0, v[0] * (m + r - a) - v[1] * b, 1e-14);
    }

    @Test void sqrtPsdSquaresBack() {
        Random r = new Random(14);
        double[][] c = randomCovariance(r, 64, 30); // singular: its root must still square back
        double[][] s = Linalg.sqrtPsd(c);
        assertTrue(Linalg.frobeniusDistance(Linalg.multiply(s, s), c) < 1e-10 * Linalg.maxAbs(c) * 64);
        assertTrue(Linalg.frobeniusDistance(s, Linalg.transpose(s)) == 0, "root is symmetric");
        for (double v : Linalg.eigvalsh(s)) assertTrue(v > -1e-7, "root is PSD, eigenvalue " + v);
        // diag(4, 9, 0) -> diag(2, 3, 0)
        double[][] d = Linalg.sqrtPsd(new double[][] {{4, 0, 0}, {0, 9, 0}, {0, 0, 0}});
        assertArrayEquals(new double[][] {{2, 0, 0}, {0, 3, 0}, {0, 0, 0}}, d);
        // trace of the root = sum of square roots of the eigenvalues
        assertEquals(5.0, Linalg.traceSqrtPsd("d", new double[][] {{4, 0, 0}, {0, 9, 0}, {0, 0, 0}}), 1e-15);
        // a tiny negative eigenvalue is rounding: clamped
        double[][] nearly = {{1, 0}, {0, -1e-12}};
        assertArrayEquals(new double[][] {{1, 0}, {0, 0}}, Linalg.sqrtPsd(nearly));
    }

    @Test void rejectsBadInput() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Linalg.sqrtPsd("sigma", new double[][] {{1, 0}, {0, -0.5}}));
        assertTrue(e.getMessage().contains("sigma") && e.getMessage().contains("positive semidefinite"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Linalg.eigh(new double[][] {{1, 2}, {0, 1}}));
        assertTrue(e.getMessage().contains("not symmetric"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Linalg.eigh(new double[][] {{1, 2, 3}, {2, 1}}));
        assertTrue(e.getMessage().contains("square"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Linalg.eigh(new double[][] {{Double.NaN}}));
        assertTrue(e.getMessage().contains("non-finite"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Linalg.eigh(new double[0][0]));
        assertThrows(IllegalArgumentException.class, () -> Linalg.multiply(new double[2][3], new double[2][3]));
    }

    @Test void multiplyAndTraceMatchLoops() {
        Random r = new Random(15);
        int m = 7, k = 5, n = 9;
        double[][] a = new double[m][k], b = new double[k][n];
        for (double[] row : a) for (int j = 0; j < k; j++) row[j] = r.nextGaussian();
        for (double[] row : b) for (int j = 0; j < n; j++) row[j] = r.nextGaussian();
        double[][] c = Linalg.multiply(a, b);
        for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += a[i][p] * b[p][j];
            assertEquals(s, c[i][j], 1e-14);
        }
        assertEquals(1 + 5 + 9, Linalg.trace(new double[][] {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}));
        double[] x = {1, -2, 0.5, 3, 1};
        double[] y = Linalg.multiply(a, x);
        for (int i = 0; i < m; i++) assertEquals(Linalg.dot(a[i], x), y[i], 0);
    }
}
