package io.diffquant.engine.metrics;

import java.util.Arrays;

/**
 * Small dense double-precision linear algebra for the metrics: symmetric eigendecomposition by Householder
 * tridiagonalisation and the implicit QL method with Wilkinson shifts (Golub and Van Loan, "Matrix Computations",
 * 4th ed., §8.3), matrix products, traces and the PSD square root.
 *
 * <p>Matrices are {@code double[rows][cols]}, row-major; inputs are never modified.
 */
public final class Linalg {
    private Linalg() {}

    /** Relative asymmetry |a_ij - a_ji| / max|a| accepted by the symmetric routines (float32 rounding level). */
    public static final double SYMMETRY_TOLERANCE = 1e-5;

    /** Iterations of the QL method allowed per eigenvalue before giving up. */
    private static final int MAX_QL_ITERATIONS = 64;
    private static final double EPS = Math.ulp(1.0);

    /**
     * Eigenvalues in ascending order, with {@code vectors()[j]} the unit eigenvector of {@code values()[j]}
     * (so A = Σ_j values[j] · vectors[j] vectors[j]ᵀ). Accessors return the internal arrays. {@code vectors} is
     * null only inside {@link #eigvalsh}.
     */
    public record Eigen(double[] values, double[][] vectors) {
        public int size() { return values.length; }

        /** Σ_j f(λ_j) v_j v_jᵀ for f given as the array {@code fValues} (one per eigenvalue). */
        public double[][] compose(double[] fValues) {
            int n = values.length;
            if (fValues.length != n) throw new IllegalArgumentException(
                    "compose: expected " + n + " function values, got " + fValues.length);
            double[][] scaled = new double[n][];
            for (int j = 0; j < n; j++) {
                double[] row = vectors[j].clone();
                double f = fValues[j];
                for (int c = 0; c < n; c++) row[c] *= f;
                scaled[j] = row;
            }
            // result[r][c] = Σ_j v_j[r] f_j v_j[c]  =  (Vᵀ · scaled)[r][c]
            double[][] out = new double[n][n];
            for (int j = 0; j < n; j++) {
                double[] v = vectors[j], s = scaled[j];
                for (int r = 0; r < n; r++) {
                    double vr = v[r];
                    if (vr == 0.0) continue;
                    double[] o = out[r];
                    for (int c = 0; c < n; c++) o[c] += vr * s[c];
                }
            }
            symmetrizeInPlace(out);
            return out;
        }
    }

    // ------------------------------------------------------------------ checks

    /** Throws unless {@code a} is a non-empty n x n matrix of finite values. Returns n. */
    public static int requireSquare(String name, double[][] a) {
        if (a == null) throw new IllegalArgumentException(name + ": matrix is null");
        int n = a.length;
        if (n == 0) throw new IllegalArgumentException(name + ": matrix is empty");
        for (int i = 0; i < n; i++) {
            if (a[i] == null || a[i].length != n) throw new IllegalArgumentException(
                    name + ": expected a square " + n + " x " + n + " matrix but row " + i + " has "
                            + (a[i] == null ? "no" : String.valueOf(a[i].length)) + " entries");
            for (int j = 0; j < n; j++) if (!Double.isFinite(a[i][j])) throw new IllegalArgumentException(
                    name + ": non-finite entry " + a[i][j] + " at (" + i + ", " + j + ")");
        }
        return n;
    }

    /**
     * Throws unless {@code a} is square, finite and symmetric to a relative tolerance
     * |a_ij - a_ji| <= tol · max|a|. Returns n.
     */
    public static int requireSymmetric(String name, double[][] a, double tol) {
        int n = requireSquare(name, a);
        double max = maxAbs(a);
        for (int i = 0; i < n; i++) for (int j = 0; j < i; j++) {
            double d = Math.abs(a[i][j] - a[j][i]);
            if (d > tol * max) throw new IllegalArgumentException(name + ": matrix is not symmetric: entry (" + i
                    + ", " + j + ") = " + a[i][j] + " but (" + j + ", " + i + ") = " + a[j][i]);
        }
        return n;
    }

    // ------------------------------------------------------------------ basic operations

    public static double[][] identity(int n) {
        double[][] m = new double[n][n];
        for (int i = 0; i < n; i++) m[i][i] = 1.0;
        return m;
    }

    public static double[][] copy(double[][] a) {
        double[][] c = new double[a.length][];
        for (int i = 0; i < a.length; i++) c[i] = a[i].clone();
        return c;
    }

    public static double[][] transpose(double[][] a) {
        int r = a.length, c = r == 0 ? 0 : a[0].length;
        double[][] t = new double[c][r];
        for (int i = 0; i < r; i++) for (int j = 0; j < c; j++) t[j][i] = a[i][j];
        return t;
    }

    /** A · B for A (m x k) and B (k x n). */
    public static double[][] multiply(double[][] a, double[][] b) {
        int m = a.length;
        if (m == 0) return new double[0][0];
        int k = a[0].length;
        if (b.length != k) throw new IllegalArgumentException(
                "multiply: inner dimensions differ: " + m + " x " + k + " times " + b.length + " x ?");
        int n = k == 0 ? 0 : b[0].length;
        for (double[] row : a) if (row.length != k) throw new IllegalArgumentException("multiply: ragged left matrix");
        for (double[] row : b) if (row.length != n) throw new IllegalArgumentException("multiply: ragged right matrix");
        double[][] c = new double[m][n];
        for (int i = 0; i < m; i++) {
            double[] ci = c[i], ai = a[i];
            for (int p = 0; p < k; p++) {
                double aip = ai[p];
                if (aip == 0.0) continue;
                double[] bp = b[p];
                for (int j = 0; j < n; j++) ci[j] += aip * bp[j];
            }
        }
        return c;
    }

    /** A · x. */
    public static double[] multiply(double[][] a, double[] x) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            if (a[i].length != x.length) throw new IllegalArgumentException(
                    "multiply: row " + i + " has " + a[i].length + " entries, vector has " + x.length);
            y[i] = dot(a[i], x);
        }
        return y;
    }

    public static double dot(double[] a, double[] b) {
        if (a.length != b.length) throw new IllegalArgumentException("dot: lengths " + a.length + " and " + b.length);
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    public static double trace(double[][] a) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i].length != a.length) throw new IllegalArgumentException("trace: matrix is not square");
            s += a[i][i];
        }
        return s;
    }

    /** Largest absolute entry. */
    public static double maxAbs(double[][] a) {
        double m = 0;
        for (double[] row : a) for (double v : row) m = Math.max(m, Math.abs(v));
        return m;
    }

    /** Frobenius norm of A - B. */
    public static double frobeniusDistance(double[][] a, double[][] b) {
        if (a.length != b.length) throw new IllegalArgumentException("frobeniusDistance: row counts differ");
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i].length != b[i].length) throw new IllegalArgumentException("frobeniusDistance: shapes differ");
            for (int j = 0; j < a[i].length; j++) {
                double d = a[i][j] - b[i][j];
                s += d * d;
            }
        }
        return Math.sqrt(s);
    }

    /** Replaces A by (A + Aᵀ) / 2. */
    public static void symmetrizeInPlace(double[][] a) {
        int n = a.length;
        for (int i = 0; i < n; i++) for (int j = 0; j < i; j++) {
            double v = 0.5 * (a[i][j] + a[j][i]);
            a[i][j] = v;
            a[j][i] = v;
        }
    }

    // ------------------------------------------------------------------ eigen

    /**
     * Eigendecomposition of a real symmetric matrix (symmetric to {@value #SYMMETRY_TOLERANCE} relative, which
     * admits float32-computed covariances; the symmetric part (A + Aᵀ) / 2 is used).
     * O(n³): about 0.1 s for n = 256 and under a second for n = 512.
     *
     * @throws IllegalArgumentException for a non-square, non-finite or non-symmetric input
     * @throws ArithmeticException if the QL iteration fails to converge (not expected for finite input)
     */
    public static Eigen eigh(double[][] matrix) {
        return decompose("eigh", matrix, true);
    }

    /** Eigenvalues only of a real symmetric matrix, ascending (cheaper than {@link #eigh}: no eigenvectors). */
    public static double[] eigvalsh(double[][] matrix) {
        return decompose("eigvalsh", matrix, false).values();
    }

    private static Eigen decompose(String name, double[][] matrix, boolean wantVectors) {
        int n = requireSymmetric(name, matrix, SYMMETRY_TOLERANCE);
        double[][] a = copy(matrix);
        symmetrizeInPlace(a);
        double scale = maxAbs(a);
        if (scale == 0.0) {
            return new Eigen(new double[n], wantVectors ? identity(n) : null);
        }
        // Rows (and so columns) that are exactly zero are eigenvectors e_i with eigenvalue 0: split them off and
        // decompose the rest. (The covariance of features of which most are constant, e.g. sFID features of fully
        // saturated images, has hundreds of such rows, and the QL sweeps did not converge on it.)
        int[] keep = java.util.stream.IntStream.range(0, n).filter(i -> Arrays.stream(a[i]).anyMatch(v -> v != 0.0)).toArray();
        if (keep.length < n) return withZeroRows(name, a, keep, wantVectors);
        // Work on A / scale so that squares of entries neither overflow nor underflow.
        double inv = 1.0 / scale;
        for (double[] row : a) for (int j = 0; j < n; j++) row[j] *= inv;

        double[] d = new double[n];
        double[] e = new double[n];
        // w holds Qᵀ (row i = column i of Q) where A = Q T Qᵀ; later the rotations of the QL sweeps are applied
        // to its rows, so that in the end row j is the eigenvector of d[j].
        double[][] w = wantVectors ? identity(n) : null;
        tridiagonalize(a, d, e, w);
        qlImplicit(d, e, w);

        for (int i = 0; i < n; i++) d[i] *= scale;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        Arrays.sort(order, (x, y) -> Double.compare(d[x], d[y]));
        double[] values = new double[n];
        double[][] vectors = wantVectors ? new double[n][] : null;
        for (int k = 0; k < n; k++) {
            values[k] = d[order[k]];
            if (wantVectors) vectors[k] = w[order[k]];
        }
        return new Eigen(values, vectors);
    }

    /** The decomposition of a symmetric {@code a} whose rows outside {@code keep} are zero: the kept block's, plus e_i for 0. */
    private static Eigen withZeroRows(String name, double[][] a, int[] keep, boolean wantVectors) {
        int n = a.length, k = keep.length;
        double[][] sub = new double[k][k];
        for (int i = 0; i < k; i++) for (int j = 0; j < k; j++) sub[i][j] = a[keep[i]][keep[j]];
        Eigen block = decompose(name, sub, wantVectors);
        double[] values = new double[n];
        double[][] vectors = wantVectors ? new double[n][] : null;
        boolean[] kept = new boolean[n];
        for (int i : keep) kept[i] = true;
        int out = 0, b = 0;
        // merge the block's ascending eigenvalues with the n - k zeros (block values < 0 first, then the zeros)
        while (b < k && block.values()[b] < 0) out = put(values, vectors, out, block, b++, keep, n);
        for (int i = 0; i < n; i++) if (!kept[i]) {
            if (wantVectors) {
                vectors[out] = new double[n];
                vectors[out][i] = 1.0;
            }
            values[out++] = 0.0;
        }
        while (b < k) out = put(values, vectors, out, block, b++, keep, n);
        return new Eigen(values, vectors);
    }

    private static int put(double[] values, double[][] vectors, int out, Eigen block, int b, int[] keep, int n) {
        values[out] = block.values()[b];
        if (vectors != null) {
            double[] v = new double[n];
            for (int i = 0; i < keep.length; i++) v[keep[i]] = block.vectors()[b][i];
            vectors[out] = v;
        }
        return out + 1;
    }

    /**
     * Householder reduction A = Q T Qᵀ. On return d is T's diagonal, e[k] = T[k+1][k] (e[n-1] = 0) and w = Qᵀ
     * (if w is not null).
     * a is overwritten.
     */
    private static void tridiagonalize(double[][] a, double[] d, double[] e, double[][] w) {
        int n = a.length;
        double[] v = new double[n];
        double[] p = new double[n];
        double[] u = new double[n];
        for (int k = 0; k < n - 2; k++) {
            double[] ak = a[k];
            d[k] = ak[k];
            int m = n - k - 1; // length of x = A[k+1.., k] = A[k][k+1..] by symmetry
            double x0 = ak[k + 1];
            double tail = 0;
            for (int i = k + 2; i < n; i++) tail += ak[i] * ak[i];
            if (tail == 0.0) { // already in tridiagonal form in this column: H = I
                e[k] = x0;
                continue;
            }
            double norm = Math.sqrt(x0 * x0 + tail);
            double alpha = x0 > 0 ? -norm : norm;
            // v = x - alpha e1, beta = 2 / vᵀv; then H x = alpha e1 with H = I - beta v vᵀ.
            v[0] = x0 - alpha;
            for (int i = 1; i < m; i++) v[i] = ak[k + 1 + i];
            double vv = v[0] * v[0] + tail;
            double beta = 2.0 / vv;
            e[k] = alpha;

            // p = beta B v with B = A[k+1.., k+1..]
            for (int i = 0; i < m; i++) {
                double[] row = a[k + 1 + i];
                double s = 0;
                for (int j = 0; j < m; j++) s += row[k + 1 + j] * v[j];
                p[i] = beta * s;
            }
            double vp = 0;
            for (int i = 0; i < m; i++) vp += v[i] * p[i];
            double kk = 0.5 * beta * vp;
            for (int i = 0; i < m; i++) p[i] -= kk * v[i]; // p is now w = p - K v
            // B -= v pᵀ + p vᵀ
            for (int i = 0; i < m; i++) {
                double[] row = a[k + 1 + i];
                double vi = v[i], pi = p[i];
                for (int j = 0; j < m; j++) row[k + 1 + j] -= vi * p[j] + pi * v[j];
            }

            if (w == null) continue;
            // Qᵀ <- H Qᵀ: rows k+1.. of w: W_j -= beta v_j (Σ_i v_i W_i)
            Arrays.fill(u, 0.0);
            for (int i = 0; i < m; i++) {
                double vi = v[i];
                double[] row = w[k + 1 + i];
                for (int c = 0; c < n; c++) u[c] += vi * row[c];
            }
            for (int i = 0; i < m; i++) {
                double f = beta * v[i];
                if (f == 0.0) continue;
                double[] row = w[k + 1 + i];
                for (int c = 0; c < n; c++) row[c] -= f * u[c];
            }
        }
        if (n >= 2) {
            d[n - 2] = a[n - 2][n - 2];
            e[n - 2] = a[n - 2][n - 1];
        }
        d[n - 1] = a[n - 1][n - 1];
        e[n - 1] = 0.0;
    }

    /**
     * Implicit QL with Wilkinson shifts on the symmetric tridiagonal (d, e), accumulating the plane rotations into
     * the rows of w (if not null). On return d holds the (unsorted) eigenvalues.
     */
    private static void qlImplicit(double[] d, double[] e, double[][] w) {
        int n = d.length;
        // Off-diagonal elements below eps·||T|| are negligible: the Householder stage already made errors of that
        // size, and a test relative to |d[m]| + |d[m+1]| alone never fires inside a cluster of zero eigenvalues.
        double norm = 0;
        for (int i = 0; i < n; i++) norm = Math.max(norm, Math.abs(d[i]) + Math.abs(e[i]) + (i > 0 ? Math.abs(e[i - 1]) : 0));
        double negligible = EPS * norm;
        for (int l = 0; l < n; l++) {
            int iterations = 0;
            int m;
            while (true) {
                // find the first negligible off-diagonal element at or after l
                for (m = l; m < n - 1; m++) {
                    if (Math.abs(e[m]) <= negligible) break;
                }
                if (m == l) break;
                if (++iterations > MAX_QL_ITERATIONS) throw new ArithmeticException(
                        "eigh: QL iteration did not converge for eigenvalue " + l + " of " + n);
                // Wilkinson shift from the leading 2x2 block of the unreduced part
                double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
                double r = Math.hypot(g, 1.0);
                g = d[m] - d[l] + e[l] / (g + Math.copySign(r, g));
                double s = 1.0, c = 1.0, p = 0.0;
                boolean underflow = false;
                for (int i = m - 1; i >= l; i--) {
                    double f = s * e[i];
                    double b = c * e[i];
                    r = Math.hypot(f, g);
                    e[i + 1] = r;
                    if (r == 0.0) { // recover from underflow: deflate and restart
                        d[i + 1] -= p;
                        e[m] = 0.0;
                        underflow = true;
                        break;
                    }
                    s = f / r;
                    c = g / r;
                    g = d[i + 1] - p;
                    r = (d[i] - g) * s + 2.0 * c * b;
                    p = s * r;
                    d[i + 1] = g + p;
                    g = c * r - b;
                    if (w == null) continue;
                    // rotate eigenvector rows i and i+1
                    double[] wi = w[i], wi1 = w[i + 1];
                    for (int k = 0; k < n; k++) {
                        double t = wi1[k];
                        wi1[k] = s * wi[k] + c * t;
                        wi[k] = c * wi[k] - s * t;
                    }
                }
                if (underflow) continue;
                d[l] -= p;
                e[l] = g;
                e[m] = 0.0;
            }
        }
    }

    // ------------------------------------------------------------------ functions of symmetric matrices

    /**
     * Square root of a symmetric positive semidefinite matrix, V diag(sqrt(λ)) Vᵀ. Negative eigenvalues down to
     * -1e-6 · max|λ| (rounding) are clamped to 0, as are positive ones below {@link #noiseFloor}; a more negative
     * one means the input is not PSD.
     *
     * @throws IllegalArgumentException if the matrix is not symmetric or clearly not positive semidefinite
     */
    public static double[][] sqrtPsd(double[][] a) {
        return sqrtPsd("sqrtPsd", a);
    }

    /** {@link #sqrtPsd(double[][])} naming the matrix in error messages. */
    public static double[][] sqrtPsd(String name, double[][] a) {
        Eigen eig = decompose(name, a, true);
        double[] values = eig.values();
        checkPsd(name, values);
        double[] roots = new double[values.length];
        double floor = noiseFloor(values);
        for (int j = 0; j < values.length; j++) roots[j] = values[j] <= floor ? 0.0 : Math.sqrt(values[j]);
        return eig.compose(roots);
    }

    /** Relative size below which negative eigenvalues of a PSD matrix are taken as rounding noise. */
    public static final double PSD_TOLERANCE = 1e-6;

    /**
     * n · eps · max|λ|: the rounding level of eigenvalues computed by {@link #eigh} for an n x n matrix. Below it an
     * eigenvalue cannot be told from 0, and since sqrt turns an error δ into sqrt(δ) (1e-8 for δ = 1e-16), the square
     * root functions here treat such eigenvalues as exactly 0; the bias is at most sqrt of this level per eigenvalue,
     * the size of the noise it removes.
     */
    public static double noiseFloor(double[] eigenvalues) {
        double maxAbs = 0;
        for (double v : eigenvalues) maxAbs = Math.max(maxAbs, Math.abs(v));
        return eigenvalues.length * EPS * maxAbs;
    }

    /** Σ sqrt(λ) over the eigenvalues above {@link #noiseFloor}. */
    public static double sumSqrtAboveNoise(double[] eigenvalues) {
        double floor = noiseFloor(eigenvalues);
        double s = 0;
        for (double v : eigenvalues) if (v > floor) s += Math.sqrt(v);
        return s;
    }

    /**
     * Throws unless the symmetric matrix {@code a} is positive semidefinite up to rounding (no eigenvalue below
     * -{@value #PSD_TOLERANCE} · max|λ|). Returns its eigenvalues, ascending.
     */
    public static double[] requirePsd(String name, double[][] a) {
        double[] values = decompose(name, a, false).values();
        checkPsd(name, values);
        return values;
    }

    private static double checkPsd(String name, double[] values) {
        double maxAbs = 0;
        for (double v : values) maxAbs = Math.max(maxAbs, Math.abs(v));
        for (double v : values) if (v < -PSD_TOLERANCE * maxAbs) throw new IllegalArgumentException(name
                + ": matrix is not positive semidefinite: eigenvalue " + v + " (largest |eigenvalue| " + maxAbs + ")");
        return maxAbs;
    }

    /**
     * Tr sqrt(A) = Σ_j sqrt(λ_j) over the eigenvalues of a symmetric PSD matrix above {@link #noiseFloor}
     * (its nuclear norm), with the same PSD check as {@link #sqrtPsd(String, double[][])}.
     */
    public static double traceSqrtPsd(String name, double[][] a) {
        double[] values = requirePsd(name, a);
        return sumSqrtAboveNoise(values);
    }
}
