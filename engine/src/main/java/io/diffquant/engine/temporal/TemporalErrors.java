package io.diffquant.engine.temporal;

import java.util.Arrays;

/**
 * Temporal feature errors of ê against e (ALGORITHMS.md §6, TFMQ-DM's temporal feature disturbance) for every
 * feature i, timestep t and label y: relative L2 ||ê - e||² / ||e||² (squared, as the contract defines it), mean
 * squared error ||ê - e||² / width and cosine similarity ê·e / (||ê|| ||e||). Per (i, t) values are the mean over the
 * labels. Conventions for zero vectors: relative L2 is 0 when ê = e = 0 and +infinity when only e is 0; the cosine of
 * two zero vectors is 1, of one zero vector 0. Immutable; computed in double precision.
 */
public final class TemporalErrors {
    /** Which error. */
    public enum Metric {
        REL_L2("rel_l2"), MSE("mse"), COSINE("cosine");
        private final String id;
        Metric(String id) { this.id = id; }
        public String id() { return id; }
    }

    private final TemporalFeatures reference;
    private final int nf, nt, ny;
    /** [metric][feature][t * ny + y] */
    private final double[][][] values;

    private TemporalErrors(TemporalFeatures reference, double[][][] values) {
        this.reference = reference;
        this.nf = reference.featureCount();
        this.nt = reference.timestepCount();
        this.ny = reference.labelCount();
        this.values = values;
    }

    /**
     * Errors of {@code other} against {@code reference}; both tables must cover the same features, timestep values and
     * labels (in the same order).
     */
    public static TemporalErrors compare(TemporalFeatures reference, TemporalFeatures other) {
        if (reference.featureCount() != other.featureCount() || !Arrays.equals(reference.timesteps(), other.timesteps())
                || !Arrays.equals(reference.labels(), other.labels()))
            throw new IllegalArgumentException("temporal errors: the two feature tables cover different features, timesteps or labels");
        int nf = reference.featureCount(), nt = reference.timestepCount(), ny = reference.labelCount();
        double[][][] v = new double[3][nf][nt * ny];
        for (int i = 0; i < nf; i++) {
            int w = reference.width(i);
            if (w != other.width(i)) throw new IllegalArgumentException("temporal errors: feature " + i + " has width " + w + " and " + other.width(i));
            float[] a = reference.raw(i), b = other.raw(i);
            for (int k = 0; k < nt * ny; k++) {
                double[] e = of(a, b, k * w, w);
                v[0][i][k] = e[0];
                v[1][i][k] = e[1];
                v[2][i][k] = e[2];
            }
        }
        return new TemporalErrors(reference, v);
    }

    /** {relative L2, MSE, cosine} of ê = b[off, off+w) against e = a[off, off+w). */
    public static double[] of(float[] a, float[] b, int off, int w) {
        double ee = 0, dd = 0, qq = 0, eq = 0;
        for (int j = off; j < off + w; j++) {
            double e = a[j], q = b[j], d = q - e;
            ee += e * e;
            dd += d * d;
            qq += q * q;
            eq += e * q;
        }
        double rel = ee == 0 ? (dd == 0 ? 0 : Double.POSITIVE_INFINITY) : dd / ee;
        double cos = ee == 0 && qq == 0 ? 1 : (ee == 0 || qq == 0 ? 0 : eq / Math.sqrt(ee * qq));
        return new double[] {rel, w == 0 ? 0 : dd / w, cos};
    }

    public TemporalFeatures reference() { return reference; }
    public int featureCount() { return nf; }
    public int timestepCount() { return nt; }
    public int labelCount() { return ny; }

    /** The error of feature i at timestep index ti and label index yi. */
    public double value(Metric m, int feature, int ti, int yi) { return values[m.ordinal()][feature][ti * ny + yi]; }

    /** The error of feature i at timestep index ti, mean over the labels. */
    public double value(Metric m, int feature, int ti) {
        double s = 0;
        for (int y = 0; y < ny; y++) s += values[m.ordinal()][feature][ti * ny + y];
        return s / ny;
    }

    /** [feature][timestep index] of the label means. */
    public double[][] matrix(Metric m) {
        double[][] out = new double[nf][nt];
        for (int i = 0; i < nf; i++) for (int t = 0; t < nt; t++) out[i][t] = value(m, i, t);
        return out;
    }

    /** Mean over features, timesteps and labels. */
    public double mean(Metric m) {
        double s = 0;
        for (int i = 0; i < nf; i++) for (double x : values[m.ordinal()][i]) s += x;
        return s / ((double) nf * nt * ny);
    }

    /** Mean over timesteps and labels of one feature. */
    public double mean(Metric m, int feature) {
        double s = 0;
        for (double x : values[m.ordinal()][feature]) s += x;
        return s / ((double) nt * ny);
    }

    /** Per-timestep mean over features and labels. */
    public double[] perTimestep(Metric m) {
        double[] out = new double[nt];
        for (int t = 0; t < nt; t++) {
            double s = 0;
            for (int i = 0; i < nf; i++) s += value(m, i, t);
            out[t] = s / nf;
        }
        return out;
    }
}
