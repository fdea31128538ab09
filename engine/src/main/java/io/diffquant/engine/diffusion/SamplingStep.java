package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Tensor;

/**
 * One finished reverse step (ADM's p_sample / ddim_sample output). Tensors are fresh per step and never mutated
 * afterwards, so they can be kept.
 *
 * @param index       0-based step number in sampling order (0 = the noisiest step)
 * @param totalSteps  number of steps of the run
 * @param t           ORIGINAL timestep value the model was called with (the key for every per-timestep quantity)
 * @param x           x after the step (x_{t'} ; after the last step: the final sample), [N, C, H, W]
 * @param predX0      the predicted x̂_0 (clamped when clipDenoised), [N, C, H, W]
 * @param modelOutput the model output used (after classifier-free guidance; cond half only), [N, outC, H, W]
 */
public record SamplingStep(int index, int totalSteps, int t, Tensor x, Tensor predX0, Tensor modelOutput) {
    public boolean isLast() { return index == totalSteps - 1; }
}
