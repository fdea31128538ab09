package io.diffquant.engine.analysis;

import java.util.ArrayList;
import java.util.List;

/**
 * Temporal information mismatch (TFMQ-DM, ALGORITHMS.md §6): the quantized feature ê_i(t) may lie closer to the FP
 * feature of another timestep e_i(t') than to its own. For every feature, the matrix of distances ||ê_i(t) - e_i(t')||
 * over all pairs of sampling timesteps (averaged over the labels y, comparing equal labels), the nearest FP timestep of
 * every row, and the mismatch rate: the fraction of (t, y) whose nearest FP timestep t* = argmin_t' ||ê_i(t, y) - e_i(t', y)||
 * is not t. "all" treats the concatenation of every feature as one vector.
 */
public final class TemporalMismatch {
    private TemporalMismatch() {}

    /** Name of the aggregate over all features. */
    public static final String ALL = "all";

    /**
     * @param distance [k][k'] = mean over labels of ||ê(t_k, y) - e(t_k', y)||
     * @param nearest  argmin over k' of distance[k] (index into the timesteps)
     * @param rate     fraction of (t, y) pairs whose own nearest FP timestep differs from t
     */
    public record FeatureMismatch(String feature, double[][] distance, int[] nearest, double rate) {}

    /** The mismatch of one configuration; {@code features} in model order, then {@code all}. */
    public record Result(String config, int[] timesteps, List<FeatureMismatch> features, FeatureMismatch all) {
        public Result {
            timesteps = timesteps.clone();
            features = List.copyOf(features);
        }

        @Override public int[] timesteps() { return timesteps.clone(); }

        public FeatureMismatch feature(String name) {
            if (ALL.equals(name)) return all;
            for (FeatureMismatch f : features) if (f.feature().equals(name)) return f;
            throw new IllegalArgumentException("no temporal feature '" + name + "' in this result");
        }
    }

    /** The mismatch of every variant against the session's cached FP features. */
    public static List<Result> evaluate(AnalysisSession session, List<Variant> variants) {
        FeatureTable fp = session.fpFeatures();
        List<Result> out = new ArrayList<>();
        for (Variant v : variants) out.add(compute(v.name(), fp, session.features(v)));
        return out;
    }

    /** The mismatch of table {@code q} against {@code fp}. */
    public static Result compute(String config, FeatureTable fp, FeatureTable q) {
        if (!fp.sameLayout(q)) throw new IllegalArgumentException("temporal feature tables of '" + config
                + "' and full precision differ in features, timesteps, labels or widths");
        int nt = fp.timesteps().length, rows = fp.rows();
        double[][][] total = new double[nt][nt][rows];   // summed squared distances over features
        List<FeatureMismatch> per = new ArrayList<>();
        for (String f : fp.features()) {
            double[][][] sq = new double[nt][nt][rows];
            float[] e = fp.data(f), h = q.data(f);
            int d = fp.dim(f);
            for (int k = 0; k < nt; k++) {
                for (int r = 0; r < rows; r++) {
                    int oq = q.offset(f, k, r);
                    for (int k2 = 0; k2 < nt; k2++) {
                        int oe = fp.offset(f, k2, r);
                        double s = 0;
                        for (int j = 0; j < d; j++) {
                            double diff = (double) h[oq + j] - e[oe + j];
                            s += diff * diff;
                        }
                        sq[k][k2][r] = s;
                        total[k][k2][r] += s;
                    }
                }
            }
            per.add(summarize(f, sq));
        }
        return new Result(config, fp.timesteps(), per, summarize(ALL, total));
    }

    private static FeatureMismatch summarize(String name, double[][][] sq) {
        int nt = sq.length, rows = nt == 0 ? 0 : sq[0][0].length;
        double[][] dist = new double[nt][nt];
        int[] nearest = new int[nt];
        long mismatches = 0;
        for (int k = 0; k < nt; k++) {
            for (int k2 = 0; k2 < nt; k2++) {
                double s = 0;
                for (int r = 0; r < rows; r++) s += Math.sqrt(sq[k][k2][r]);
                dist[k][k2] = s / rows;
            }
            nearest[k] = argmin(dist[k], k);
            for (int r = 0; r < rows; r++) {
                int best = k;
                double bv = sq[k][k][r];
                for (int k2 = 0; k2 < nt; k2++) if (sq[k][k2][r] < bv) { bv = sq[k][k2][r]; best = k2; }
                if (best != k) mismatches++;
            }
        }
        double rate = nt * rows == 0 ? Double.NaN : (double) mismatches / ((long) nt * rows);
        return new FeatureMismatch(name, dist, nearest, rate);
    }

    /** Index of the smallest value; ties keep {@code own} (a tie with the own timestep is not a mismatch), else the first. */
    private static int argmin(double[] v, int own) {
        int best = own;
        for (int i = 0; i < v.length; i++) if (v[i] < v[best]) best = i;
        return best;
    }
}
