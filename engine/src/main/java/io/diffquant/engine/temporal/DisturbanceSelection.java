package io.diffquant.engine.temporal;

/**
 * TFMQ's disturbance-aware selection (DS; TPAMI version of TFMQ-DM, ALGORITHMS.md §6): for every temporal feature i and
 * sampling timestep t, the maintenance strategy with the lower temporal feature error: the TIB-based path (the
 * quantized Temporal Information Block after TIAR and FSC) or the cache (the feature quantized offline with its own
 * parameters, {@link FeatureCache}). Errors are label means ({@link TemporalErrors#value(TemporalErrors.Metric, int, int)});
 * the cache wins only when strictly better (for the cosine metric: strictly more similar). The map is
 * [feature][timestep index] with true = cache.
 */
public final class DisturbanceSelection {
    private DisturbanceSelection() {}

    /**
     * @param useCache    [feature][timestep] true = cache
     * @param tib         errors of the TIB-based features
     * @param cache       errors of the cached features
     * @param selected    the error of the chosen strategy, [feature][timestep]
     */
    public record Result(TemporalErrors.Metric metric, boolean[][] useCache, TemporalErrors tib, TemporalErrors cache, double[][] selected) {
        /** Mean of the chosen errors over features and timesteps. */
        public double meanSelected() {
            double s = 0;
            int n = 0;
            for (double[] r : selected) for (double v : r) { s += v; n++; }
            return n == 0 ? 0 : s / n;
        }

        /** Entries taken from the cache. */
        public int cachedEntries() {
            int n = 0;
            for (boolean[] r : useCache) for (boolean b : r) if (b) n++;
            return n;
        }
    }

    /**
     * Chooses per (feature, timestep).
     * @param fp        the full-precision features (the reference)
     * @param tibBased  the features of the quantized TIB (same timesteps and labels)
     * @param cached    the dequantized cached features (same timesteps and labels)
     */
    public static Result select(TemporalFeatures fp, TemporalFeatures tibBased, TemporalFeatures cached, TemporalErrors.Metric metric) {
        TemporalErrors et = TemporalErrors.compare(fp, tibBased), ec = TemporalErrors.compare(fp, cached);
        int nf = fp.featureCount(), nt = fp.timestepCount();
        boolean[][] use = new boolean[nf][nt];
        double[][] sel = new double[nf][nt];
        for (int i = 0; i < nf; i++) {
            for (int t = 0; t < nt; t++) {
                double a = et.value(metric, i, t), b = ec.value(metric, i, t);
                boolean cache = metric == TemporalErrors.Metric.COSINE ? b > a : b < a;
                use[i][t] = cache;
                sel[i][t] = cache ? b : a;
            }
        }
        return new Result(metric, use, et, ec, sel);
    }
}
