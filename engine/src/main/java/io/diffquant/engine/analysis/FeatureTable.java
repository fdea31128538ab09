package io.diffquant.engine.analysis;

import io.diffquant.engine.temporal.TemporalFeatures;
import io.diffquant.engine.temporal.TemporalInfoBlock;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every temporal feature e_i(t, y) of a model for a finite set of timestep values and labels (TFMQ §6: t and y come
 * from finite sets, so the features form a finite table), by feature name: the analyses' view of a
 * {@link TemporalFeatures} table ({@link #of(TemporalFeatures)} shares its arrays), or a hand-made table. Feature i at
 * (timesteps[k], labels[l]) is the vector {@code data(i)[(k * labels + l) * dim(i) .. + dim(i))}. Immutable once built.
 */
public final class FeatureTable {
    private final List<String> features;
    private final int[] timesteps;
    private final int[] labels;
    private final Map<String, float[]> data;
    private final Map<String, Integer> dims;

    /**
     * @param labels the labels of the rows, or null for an unconditional model (one row per timestep)
     * @param data   feature -> values [timesteps, rows, dim] flattened
     */
    public FeatureTable(List<String> features, int[] timesteps, int[] labels, Map<String, float[]> data) {
        this.features = List.copyOf(features);
        this.timesteps = timesteps.clone();
        this.labels = labels == null ? null : labels.clone();
        int rows = this.labels == null ? 1 : this.labels.length;
        Map<String, float[]> d = new LinkedHashMap<>();
        Map<String, Integer> dm = new LinkedHashMap<>();
        for (String f : this.features) {
            float[] v = data.get(f);
            if (v == null) throw new IllegalArgumentException("feature table: no values for feature '" + f + "'");
            int per = timesteps.length * rows;
            if (per == 0 || v.length % per != 0) throw new IllegalArgumentException("feature table: feature '" + f + "' has " + v.length
                    + " values, not a multiple of " + timesteps.length + " timesteps x " + rows + " rows");
            d.put(f, v);
            dm.put(f, v.length / per);
        }
        this.data = Collections.unmodifiableMap(d);
        this.dims = Collections.unmodifiableMap(dm);
    }

    /** The view of a {@link TemporalFeatures} table (feature names = {@link TemporalInfoBlock.Feature#name()}; no copy). */
    public static FeatureTable of(TemporalFeatures tf) {
        List<String> names = new java.util.ArrayList<>();
        Map<String, float[]> data = new LinkedHashMap<>();
        for (TemporalInfoBlock.Feature f : tf.tib().features()) {
            names.add(f.name());
            data.put(f.name(), tf.raw(f.index()));
        }
        float[] t = tf.timesteps();
        int[] ts = new int[t.length];
        for (int i = 0; i < t.length; i++) {
            ts[i] = (int) t[i];
            if (ts[i] != t[i]) throw new IllegalArgumentException("feature table: timestep " + t[i] + " is not an integer timestep value");
        }
        return new FeatureTable(names, ts, tf.labels(), data);
    }

    public List<String> features() { return features; }
    public int[] timesteps() { return timesteps.clone(); }
    /** Row labels, or null (unconditional). */
    public int[] labels() { return labels == null ? null : labels.clone(); }
    public int rows() { return labels == null ? 1 : labels.length; }
    public int dim(String feature) { return dims.get(require(feature)); }

    /** The flat [timesteps, rows, dim] values of a feature (shared: do not modify). */
    public float[] data(String feature) { return data.get(require(feature)); }

    /** Offset of e_f(timesteps[k], labels[row]) in {@link #data(String)}. */
    public int offset(String feature, int k, int row) { return (k * rows() + row) * dim(feature); }

    /** A copy of one feature vector. */
    public float[] vector(String feature, int k, int row) {
        int o = offset(feature, k, row);
        return Arrays.copyOfRange(data(feature), o, o + dim(feature));
    }

    /** Whether both tables cover the same features, timesteps and labels with the same widths. */
    public boolean sameLayout(FeatureTable o) {
        return features.equals(o.features) && Arrays.equals(timesteps, o.timesteps) && Arrays.equals(labels, o.labels) && dims.equals(o.dims);
    }

    /** A table whose values are {@code f(feature, values)} (e.g. an injected error in tests). */
    public FeatureTable map(java.util.function.BiFunction<String, float[], float[]> f) {
        Map<String, float[]> d = new LinkedHashMap<>();
        for (String name : features) d.put(name, f.apply(name, data.get(name).clone()));
        return new FeatureTable(features, timesteps, labels, d);
    }

    private String require(String feature) {
        if (!data.containsKey(feature)) throw new IllegalArgumentException("no temporal feature '" + feature + "'; features: " + features);
        return feature;
    }
}
