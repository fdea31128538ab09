package io.diffquant.engine.model;

/**
 * What a hook may know about the current denoiser call: the ORIGINAL timestep value of every batch element
 * (never a loop index, see ALGORITHMS.md §1) and the class labels (null for unconditional models).
 */
public record ForwardContext(float[] t, int[] y) {
    public static final ForwardContext NONE = new ForwardContext(new float[0], null);

    public int batch() { return t.length; }

    /** The common timestep value of the batch, or NaN when the batch mixes timesteps. */
    public float uniformT() {
        if (t.length == 0) return Float.NaN;
        float v = t[0];
        for (float x : t) if (x != v) return Float.NaN;
        return v;
    }
}
