package io.diffquant.engine.diffusion;

import java.util.Arrays;

/**
 * A base schedule restricted to a sorted subset of its timesteps, with betas recomputed from the kept ᾱ
 * (β'_k = 1 - ᾱ_{t_k} / ᾱ_{t_{k-1}}) as ADM's {@code SpacedDiffusion} (facebookresearch/DiT diffusion/respace.py).
 * Index k of {@link #spaced()} corresponds to ORIGINAL timestep {@link #timestep(int)}; the model is always called
 * with that original value.
 */
public final class RespacedSchedule {
    private final NoiseSchedule base;
    private final NoiseSchedule spaced;
    private final int[] timesteps;
    private final String spec;

    private RespacedSchedule(NoiseSchedule base, NoiseSchedule spaced, int[] timesteps, String spec) {
        this.base = base;
        this.spaced = spaced;
        this.timesteps = timesteps;
        this.spec = spec;
    }

    /** Keeps the given original timesteps (any order, no duplicates, each in [0, T)). */
    public static RespacedSchedule of(NoiseSchedule base, int[] keep, String spec) {
        if (base == null) throw new IllegalArgumentException("respacing: base schedule is null");
        if (keep == null || keep.length == 0) throw new IllegalArgumentException("respacing '" + spec + "': keeps no timestep");
        int[] ts = keep.clone();
        Arrays.sort(ts);
        for (int i = 0; i < ts.length; i++) {
            if (ts[i] < 0 || ts[i] >= base.numTimesteps()) throw new IllegalArgumentException("respacing '" + spec
                    + "': timestep " + ts[i] + " outside [0, " + base.numTimesteps() + ")");
            if (i > 0 && ts[i] == ts[i - 1]) throw new IllegalArgumentException("respacing '" + spec
                    + "': timestep " + ts[i] + " listed twice");
        }
        double[] betas = new double[ts.length];
        double last = 1.0;
        for (int k = 0; k < ts.length; k++) {
            double ac = base.alphaCumprod(ts[k]);
            betas[k] = 1 - ac / last;
            last = ac;
        }
        String name = base.name() + (spec == null || spec.isEmpty() ? "" : "/" + spec);
        return new RespacedSchedule(base, NoiseSchedule.fromBetas(name, betas), ts, spec == null ? "" : spec);
    }

    /** The schedule before respacing. */
    public NoiseSchedule base() { return base; }
    /** The respaced schedule, indexed 0..size()-1 (ADM's SpacedDiffusion constants). */
    public NoiseSchedule spaced() { return spaced; }
    /** The respacing string this was made from ("" = all timesteps). */
    public String spec() { return spec; }
    public int size() { return timesteps.length; }
    /** ORIGINAL timestep value of respaced index k (ADM's timestep_map). */
    public int timestep(int k) { return timesteps[k]; }
    /** The sorted original timesteps (ascending; sampling runs them in descending order). */
    public int[] timesteps() { return timesteps.clone(); }

    /** Respaced index of an original timestep value, or -1 when it was not kept. */
    public int indexOf(int originalTimestep) {
        int i = Arrays.binarySearch(timesteps, originalTimestep);
        return i >= 0 ? i : -1;
    }

    @Override public String toString() {
        return "RespacedSchedule[" + base.name() + ", '" + spec + "', " + timesteps.length + " of " + base.numTimesteps() + "]";
    }
}
