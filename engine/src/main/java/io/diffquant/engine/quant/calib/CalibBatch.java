package io.diffquant.engine.quant.calib;

import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * A batch of recorded denoiser inputs at one timestep value: x_t [B, C, H, W], the labels the model saw (null for
 * unconditional models) and the global row indices in the recording.
 */
public record CalibBatch(float t, Tensor x, int[] y, int[] rows) {
    public int size() { return x.dim(0); }

    /** The timestep array a forward call takes (t repeated). */
    public float[] timesteps() {
        float[] a = new float[size()];
        Arrays.fill(a, t);
        return a;
    }
}
