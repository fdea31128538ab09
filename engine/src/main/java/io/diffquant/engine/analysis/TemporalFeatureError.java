package io.diffquant.engine.analysis;

import io.diffquant.engine.temporal.TemporalErrors;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Per-timestep temporal feature error (TFMQ-DM's "temporal feature disturbance", ALGORITHMS.md §6): for every temporal
 * feature i and sampling timestep t, the relative L2 error ||ê_i(t) - e_i(t)||² / ||e_i(t)||², the MSE and the cosine
 * similarity, each averaged over the labels y of a class-conditional model. The FP table comes from the session's
 * cache, so each configuration costs one pass of the Temporal Information Block over all (t, y). Per (t, y) values are
 * {@link TemporalErrors#of} (its conventions for zero vectors).
 */
public final class TemporalFeatureError {
    private TemporalFeatureError() {}

    /**
     * The errors of one configuration; arrays are [feature][timestep index].
     * @param seconds wall time of this configuration's evaluation (applying it, the quantized TIB pass and the comparison)
     */
    public record ConfigError(String config, double[][] relativeL2, double[][] mse, double[][] cosine, double seconds) {
        /** Mean relative L2 error over features at every timestep. */
        public double[] meanRelativeL2PerTimestep() {
            int nt = relativeL2.length == 0 ? 0 : relativeL2[0].length;
            double[] m = new double[nt];
            for (double[] f : relativeL2) for (int k = 0; k < nt; k++) m[k] += f[k] / relativeL2.length;
            return m;
        }

        /** Mean relative L2 error over features and timesteps. */
        public double meanRelativeL2() { return mean(relativeL2); }
        public double meanMse() { return mean(mse); }
        public double meanCosine() { return mean(cosine); }

        /** Mean relative L2 error of one feature over timesteps. */
        public double[] meanRelativeL2PerFeature() {
            double[] m = new double[relativeL2.length];
            for (int i = 0; i < m.length; i++) m[i] = Arrays.stream(relativeL2[i]).average().orElse(Double.NaN);
            return m;
        }

        private static double mean(double[][] a) {
            double s = 0;
            long n = 0;
            for (double[] r : a) for (double v : r) { s += v; n++; }
            return n == 0 ? Double.NaN : s / n;
        }
    }

    /**
     * The result over configurations.
     * @param labels the labels averaged over (null for unconditional models)
     */
    public record Result(List<String> features, int[] timesteps, int[] labels, List<ConfigError> configs) {
        public Result {
            features = List.copyOf(features);
            timesteps = timesteps.clone();
            labels = labels == null ? null : labels.clone();
            configs = List.copyOf(configs);
        }

        @Override public int[] timesteps() { return timesteps.clone(); }
        @Override public int[] labels() { return labels == null ? null : labels.clone(); }

        public ConfigError config(String name) {
            for (ConfigError c : configs) if (c.config().equals(name)) return c;
            throw new IllegalArgumentException("no configuration '" + name + "' in this result; configurations: "
                    + configs.stream().map(ConfigError::config).toList());
        }
    }

    /** Evaluates every variant against the session's cached FP features. */
    public static Result evaluate(AnalysisSession session, List<Variant> variants) {
        FeatureTable fp = session.fpFeatures();
        List<ConfigError> out = new ArrayList<>();
        for (Variant v : variants) out.add(evaluate(session, v));
        return new Result(fp.features(), fp.timesteps(), fp.labels(), out);
    }

    /** One variant against the session's cached FP features (the GUI's call when a method is toggled). */
    public static ConfigError evaluate(AnalysisSession session, Variant v) {
        FeatureTable fp = session.fpFeatures();
        long t0 = System.nanoTime();
        FeatureTable q = session.features(v);
        ConfigError e = compare(v.name(), fp, q);
        return new ConfigError(e.config(), e.relativeL2(), e.mse(), e.cosine(), (System.nanoTime() - t0) / 1e9);
    }

    /** The errors of a quantized table {@code q} against the FP table {@code fp} (same layout). */
    public static ConfigError compare(String name, FeatureTable fp, FeatureTable q) {
        if (!fp.sameLayout(q)) throw new IllegalArgumentException("temporal feature tables of '" + name
                + "' and full precision differ in features, timesteps, labels or widths");
        List<String> fs = fp.features();
        int nt = fp.timesteps().length, rows = fp.rows();
        double[][] rel = new double[fs.size()][nt], mse = new double[fs.size()][nt], cos = new double[fs.size()][nt];
        for (int i = 0; i < fs.size(); i++) {
            String f = fs.get(i);
            float[] e = fp.data(f), h = q.data(f);
            int d = fp.dim(f);
            for (int k = 0; k < nt; k++) {
                double sr = 0, sm = 0, sc = 0;
                for (int r = 0; r < rows; r++) {
                    double[] v = TemporalErrors.of(e, h, fp.offset(f, k, r), d);
                    sr += v[0];
                    sm += v[1];
                    sc += v[2];
                }
                rel[i][k] = sr / rows;
                mse[i][k] = sm / rows;
                cos[i][k] = sc / rows;
            }
        }
        return new ConfigError(name, rel, mse, cos, 0);
    }
}
