package io.diffquant.engine.quant.calib;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Which recorded (timestep, sample) pairs calibration uses. {@link Kind#ALL}: every step and sample. {@link Kind#UNIFORM}
 * (Q-Diffusion's timestep-uniform calibration, get_train_samples): k timesteps evenly spaced along the sampling
 * trajectory (step indices floor(i·S/k)), n samples each. {@link Kind#RANDOM} (Q-DiT): k distinct steps drawn at random.
 * The n samples per timestep are drawn without replacement with {@link #seed()}; the same subset, settings and seed
 * always select the same pairs.
 *
 * @param timesteps           k (ignored for ALL)
 * @param samplesPerTimestep  n rows per selected timestep (0 = all recorded rows)
 */
public record TimestepSubset(Kind kind, int timesteps, int samplesPerTimestep, long seed) {
    public enum Kind {
        ALL, UNIFORM, RANDOM;
        public String id() { return name().toLowerCase(Locale.ROOT); }
        public static Kind parse(String s) {
            if (s != null) for (Kind k : values()) if (k.id().equals(s.trim().toLowerCase(Locale.ROOT))) return k;
            throw new IllegalArgumentException("unknown timestep subset '" + s + "'; valid: all, uniform, random");
        }
    }

    public TimestepSubset {
        if (kind == null) throw new IllegalArgumentException("timestep subset kind is null");
        if (kind != Kind.ALL && timesteps < 1) throw new IllegalArgumentException("timestep subset " + kind.id() + " needs timesteps >= 1, got " + timesteps);
        if (samplesPerTimestep < 0) throw new IllegalArgumentException("samples per timestep must be >= 0, got " + samplesPerTimestep);
        if (kind == Kind.ALL) timesteps = 0;
    }

    public static TimestepSubset all() { return new TimestepSubset(Kind.ALL, 0, 0, 0); }
    public static TimestepSubset uniform(int k, int n, long seed) { return new TimestepSubset(Kind.UNIFORM, k, n, seed); }
    public static TimestepSubset random(int k, int n, long seed) { return new TimestepSubset(Kind.RANDOM, k, n, seed); }

    /** A selected timestep value and the global row indices used at it (ascending). */
    public record Selection(int t, int[] rows) {
        @Override public int[] rows() { return rows.clone(); }
        @Override public boolean equals(Object o) { return o instanceof Selection s && s.t == t && Arrays.equals(s.rows, rows); }
        @Override public int hashCode() { return 31 * t + Arrays.hashCode(rows); }
        @Override public String toString() { return "t=" + t + " x " + rows.length + " rows"; }
    }

    /**
     * The selection over a recording.
     * @param timesteps timestep values in sampling order (S steps)
     * @param rows      recorded rows per timestep
     */
    public List<Selection> select(int[] timesteps, int rows) {
        int s = timesteps.length;
        if (s == 0 || rows == 0) throw new IllegalArgumentException("the calibration recording is empty");
        int[] idx;
        switch (kind) {
            case ALL -> {
                idx = new int[s];
                for (int i = 0; i < s; i++) idx[i] = i;
            }
            case UNIFORM -> {
                int k = Math.min(this.timesteps, s);
                idx = new int[k];
                for (int i = 0; i < k; i++) idx[i] = (int) ((long) i * s / k);
            }
            default -> {
                int k = Math.min(this.timesteps, s);
                idx = Arrays.copyOf(permutation(s, new SplittableRandom(seed ^ 0x9E3779B97F4A7C15L)), k);
                Arrays.sort(idx);
            }
        }
        int n = samplesPerTimestep == 0 ? rows : Math.min(samplesPerTimestep, rows);
        SplittableRandom rnd = new SplittableRandom(seed);
        List<Selection> out = new ArrayList<>();
        for (int i : idx) {
            int[] r;
            if (n == rows) {
                r = new int[rows];
                for (int j = 0; j < rows; j++) r[j] = j;
            } else {
                r = Arrays.copyOf(permutation(rows, rnd), n);
                Arrays.sort(r);
            }
            out.add(new Selection(timesteps[i], r));
        }
        return out;
    }

    private static int[] permutation(int n, SplittableRandom r) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = p[i]; p[i] = p[j]; p[j] = t;
        }
        return p;
    }

    /** e.g. "uniform 10 timesteps x 32 samples (seed 0)". */
    public String describe() {
        String n = samplesPerTimestep == 0 ? "all samples" : samplesPerTimestep + " samples";
        return kind == Kind.ALL ? "all timesteps x " + n : kind.id() + " " + timesteps + " timesteps x " + n + " (seed " + seed + ")";
    }
}
