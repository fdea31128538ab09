package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Mean and covariance of a set of feature vectors, the Gaussian that FID compares (mseitzer/pytorch-fid
 * {@code calculate_activation_statistics}: {@code mu = np.mean(act, axis=0)}, {@code sigma = np.cov(act,
 * rowvar=False)}, i.e. the unbiased N-1 denominator), ALGORITHMS.md §9.
 *
 * <p>Immutable: the constructor and the accessors copy. For storage the arrays go out flat under the names
 * {@value #MEAN_KEY} ([d]) and {@value #COVARIANCE_KEY} ([d, d], row-major), the names pytorch-fid uses in its
 * .npz statistics; the sample count belongs in the file's metadata under {@value #COUNT_KEY}.
 *
 * @param mean       mean vector, length d >= 1
 * @param covariance d x d symmetric covariance (asymmetry up to {@link Linalg#SYMMETRY_TOLERANCE} relative, e.g.
 *                   from float32 arithmetic, is accepted and averaged away)
 * @param count      number of feature vectors the statistics were fitted on (>= 2; 0 if unknown)
 */
public record GaussianStats(double[] mean, double[][] covariance, long count) {
    public static final String MEAN_KEY = "mu";
    public static final String COVARIANCE_KEY = "sigma";
    public static final String COUNT_KEY = "count";

    /** Rows centred at a time while accumulating the covariance. */
    private static final int BLOCK_ROWS = 128;

    public GaussianStats {
        if (mean == null || covariance == null) throw new IllegalArgumentException("Gaussian stats: mean or covariance is null");
        int d = mean.length;
        if (d == 0) throw new IllegalArgumentException("Gaussian stats: empty mean vector");
        for (int i = 0; i < d; i++) if (!Double.isFinite(mean[i])) throw new IllegalArgumentException(
                "Gaussian stats: non-finite mean entry " + mean[i] + " at index " + i);
        int n = Linalg.requireSymmetric("Gaussian stats covariance", covariance, Linalg.SYMMETRY_TOLERANCE);
        if (n != d) throw new IllegalArgumentException(
                "Gaussian stats: mean has " + d + " entries but the covariance is " + n + " x " + n);
        if (count < 0) throw new IllegalArgumentException("Gaussian stats: negative sample count " + count);
        mean = mean.clone();
        covariance = Linalg.copy(covariance);
        Linalg.symmetrizeInPlace(covariance);
    }

    public int dimension() { return mean.length; }

    /** A copy of the mean. */
    @Override public double[] mean() { return mean.clone(); }

    /** A copy of the covariance. */
    @Override public double[][] covariance() { return Linalg.copy(covariance); }

    /** The internal mean, not copied; callers in this package must not modify it. */
    double[] meanView() { return mean; }

    /** The internal covariance, not copied; callers in this package must not modify it. */
    double[][] covarianceView() { return covariance; }

    // ------------------------------------------------------------------ fitting

    /**
     * Fits mean and covariance (N-1 denominator) to N feature vectors of dimension d, in double precision with
     * two passes (mean first, then the centred second moments).
     *
     * @param features N x d, N >= 2, all rows of the same length, finite
     */
    public static GaussianStats fit(float[][] features) {
        if (features == null || features.length < 2) throw new IllegalArgumentException(
                "Gaussian stats: need at least 2 feature vectors, got " + (features == null ? 0 : features.length));
        int n = features.length;
        int d = checkRow(features[0], 0, -1);
        double[] mean = new double[d];
        for (int r = 0; r < n; r++) {
            float[] row = features[r];
            checkRow(row, r, d);
            for (int j = 0; j < d; j++) mean[j] += row[j];
        }
        for (int j = 0; j < d; j++) mean[j] /= n;
        double[][] upper = new double[d][d];
        double[][] block = new double[Math.min(BLOCK_ROWS, n)][d];
        for (int start = 0; start < n; start += BLOCK_ROWS) {
            int rows = Math.min(BLOCK_ROWS, n - start);
            for (int r = 0; r < rows; r++) {
                float[] src = features[start + r];
                double[] dst = block[r];
                for (int j = 0; j < d; j++) dst[j] = src[j] - mean[j];
            }
            accumulateUpper(block, rows, upper);
        }
        return new GaussianStats(mean, finishCovariance(upper, null, n), n);
    }

    /** {@link #fit(float[][])} for a [N, d] tensor (or [N, ...], flattened per row). */
    public static GaussianStats fit(Tensor features) {
        if (features.rank() < 2) throw new IllegalArgumentException(
                "Gaussian stats: features must be [N, d], got " + features);
        int n = features.dim(0);
        int d = n == 0 ? 0 : features.size() / n;
        float[] data = features.data();
        float[][] rows = new float[n][];
        for (int r = 0; r < n; r++) rows[r] = Arrays.copyOfRange(data, r * d, (r + 1) * d);
        return fit(rows);
    }

    private static int checkRow(float[] row, int r, int d) {
        if (row == null) throw new IllegalArgumentException("Gaussian stats: feature vector " + r + " is null");
        if (d >= 0 && row.length != d) throw new IllegalArgumentException(
                "Gaussian stats: feature vector " + r + " has " + row.length + " entries, expected " + d);
        if (row.length == 0) throw new IllegalArgumentException("Gaussian stats: feature vector " + r + " is empty");
        for (int j = 0; j < row.length; j++) if (!Float.isFinite(row[j])) throw new IllegalArgumentException(
                "Gaussian stats: non-finite feature " + row[j] + " at (" + r + ", " + j + ")");
        return row.length;
    }

    /** upper[i][j] += Σ_r block[r][i] block[r][j] for j >= i, over the first {@code rows} rows. */
    private static void accumulateUpper(double[][] block, int rows, double[][] upper) {
        int d = upper.length;
        Parallel.forRange(d, 16, (from, to) -> {
            for (int i = from; i < to; i++) {
                double[] ci = upper[i];
                for (int r = 0; r < rows; r++) {
                    double[] x = block[r];
                    double xi = x[i];
                    if (xi == 0.0) continue;
                    for (int j = i; j < d; j++) ci[j] += xi * x[j];
                }
            }
        });
    }

    /** (S2 - S1 S1ᵀ / n) / (n - 1), mirrored from the upper triangle; s1 may be null (already centred). */
    private static double[][] finishCovariance(double[][] upper, double[] s1, long n) {
        int d = upper.length;
        double[][] cov = new double[d][d];
        double inv = 1.0 / (n - 1);
        for (int i = 0; i < d; i++) for (int j = i; j < d; j++) {
            double v = upper[i][j];
            if (s1 != null) v -= s1[i] * s1[j] / n;
            v *= inv;
            cov[i][j] = v;
            cov[j][i] = v;
        }
        return cov;
    }

    /**
     * Streaming fit for feature sets too large to hold: shifted sums Σ(x - K) and Σ(x - K)(x - K)ᵀ in double,
     * with K the first vector added (which keeps the one-pass formula well conditioned). Not thread-safe.
     */
    public static final class Accumulator {
        private double[] shift;
        private double[] sum;
        private double[][] upper;
        private long count;
        private final double[][] block = new double[BLOCK_ROWS][];
        private int pending;

        public long count() { return count + pending; }

        public Accumulator add(float[] row) {
            int d = shift == null ? -1 : shift.length;
            checkRow(row, (int) Math.min(Integer.MAX_VALUE, count()), d);
            if (shift == null) {
                d = row.length;
                shift = new double[d];
                for (int j = 0; j < d; j++) shift[j] = row[j];
                sum = new double[d];
                upper = new double[d][d];
                for (int r = 0; r < BLOCK_ROWS; r++) block[r] = new double[d];
            }
            double[] dst = block[pending++];
            for (int j = 0; j < d; j++) {
                double v = row[j] - shift[j];
                dst[j] = v;
                sum[j] += v;
            }
            if (pending == BLOCK_ROWS) flush();
            return this;
        }

        public Accumulator addAll(float[][] rows) {
            for (float[] row : rows) add(row);
            return this;
        }

        /** Adds the N rows of a [N, d] (or [N, ...]) tensor. */
        public Accumulator add(Tensor features) {
            if (features.rank() < 2) throw new IllegalArgumentException(
                    "Gaussian stats: features must be [N, d], got " + features);
            int n = features.dim(0);
            if (n == 0) return this;
            int d = features.size() / n;
            float[] data = features.data();
            for (int r = 0; r < n; r++) add(Arrays.copyOfRange(data, r * d, (r + 1) * d));
            return this;
        }

        private void flush() {
            if (pending == 0) return;
            accumulateUpper(block, pending, upper);
            count += pending;
            pending = 0;
        }

        /** The statistics of everything added so far (at least 2 vectors). The accumulator stays usable. */
        public GaussianStats toStats() {
            flush();
            if (count < 2) throw new IllegalStateException(
                    "Gaussian stats: need at least 2 feature vectors, got " + count);
            int d = shift.length;
            double[] mean = new double[d];
            for (int j = 0; j < d; j++) mean[j] = shift[j] + sum[j] / count;
            return new GaussianStats(mean, finishCovariance(upper, sum, count), count);
        }
    }

    // ------------------------------------------------------------------ flat arrays for storage

    /** The covariance, row-major, length d². */
    public double[] covarianceFlat() {
        int d = mean.length;
        double[] flat = new double[d * d];
        for (int i = 0; i < d; i++) System.arraycopy(covariance[i], 0, flat, i * d, d);
        return flat;
    }

    public int[] meanShape() { return new int[] {mean.length}; }

    public int[] covarianceShape() { return new int[] {mean.length, mean.length}; }

    /** {@value #MEAN_KEY} -> mean [d], {@value #COVARIANCE_KEY} -> covariance [d, d] flat row-major (F64). */
    public Map<String, double[]> toArrays() {
        Map<String, double[]> m = new LinkedHashMap<>();
        m.put(MEAN_KEY, mean.clone());
        m.put(COVARIANCE_KEY, covarianceFlat());
        return m;
    }

    /** As {@link #toArrays()} rounded to float32 (F32 storage; loses precision, prefer F64). */
    public Map<String, float[]> toFloatArrays() {
        Map<String, float[]> m = new LinkedHashMap<>();
        m.put(MEAN_KEY, toFloats(mean));
        m.put(COVARIANCE_KEY, toFloats(covarianceFlat()));
        return m;
    }

    private static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    /**
     * Rebuilds statistics from flat arrays as written by {@link #toArrays()}.
     *
     * @param mu        mean, length d
     * @param sigmaFlat covariance, row-major, length d²
     * @param count     sample count (0 if unknown)
     */
    public static GaussianStats fromArrays(double[] mu, double[] sigmaFlat, long count) {
        if (mu == null || sigmaFlat == null) throw new IllegalArgumentException(
                "Gaussian stats: missing " + (mu == null ? MEAN_KEY : COVARIANCE_KEY) + " array");
        int d = mu.length;
        if ((long) d * d != sigmaFlat.length) throw new IllegalArgumentException("Gaussian stats: "
                + MEAN_KEY + " has " + d + " entries so " + COVARIANCE_KEY + " needs " + (long) d * d
                + " (a " + d + " x " + d + " matrix) but has " + sigmaFlat.length);
        double[][] cov = new double[d][];
        for (int i = 0; i < d; i++) cov[i] = Arrays.copyOfRange(sigmaFlat, i * d, (i + 1) * d);
        return new GaussianStats(mu, cov, count);
    }

    /** {@link #fromArrays(double[], double[], long)} from float32 arrays. */
    public static GaussianStats fromFloatArrays(float[] mu, float[] sigmaFlat, long count) {
        if (mu == null || sigmaFlat == null) throw new IllegalArgumentException(
                "Gaussian stats: missing " + (mu == null ? MEAN_KEY : COVARIANCE_KEY) + " array");
        double[] m = new double[mu.length];
        for (int i = 0; i < m.length; i++) m[i] = mu[i];
        double[] s = new double[sigmaFlat.length];
        for (int i = 0; i < s.length; i++) s[i] = sigmaFlat[i];
        return fromArrays(m, s, count);
    }

    /** {@link #fromArrays(double[], double[], long)} from a map with the keys {@value #MEAN_KEY} and {@value #COVARIANCE_KEY}. */
    public static GaussianStats fromArrays(Map<String, double[]> arrays, long count) {
        return fromArrays(arrays.get(MEAN_KEY), arrays.get(COVARIANCE_KEY), count);
    }

    // ------------------------------------------------------------------ value semantics

    @Override public boolean equals(Object o) {
        return o instanceof GaussianStats g && count == g.count && Arrays.equals(mean, g.mean)
                && Arrays.deepEquals(covariance, g.covariance);
    }

    @Override public int hashCode() {
        return 31 * (31 * Arrays.hashCode(mean) + Arrays.deepHashCode(covariance)) + Long.hashCode(count);
    }

    @Override public String toString() {
        return "GaussianStats[d=" + mean.length + ", count=" + count + "]";
    }
}
