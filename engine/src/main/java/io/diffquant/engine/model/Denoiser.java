package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

/** A pure function of weights and inputs: the model output for noisy images x [N, C, H, W] at timesteps t. */
@FunctionalInterface
public interface Denoiser {
    /**
     * @param x noisy input [N, C, H, W]
     * @param t ORIGINAL timestep values, length N
     * @param y class labels, length N (null for unconditional models; numClasses = the null/CFG class)
     * @return [N, outC, H, W]; outC = 2C when the model learns sigma
     */
    Tensor forward(Tensor x, float[] t, int[] y);
}
