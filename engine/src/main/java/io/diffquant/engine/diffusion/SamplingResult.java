package io.diffquant.engine.diffusion;

import io.diffquant.engine.tensor.Tensor;

import java.util.List;

/**
 * A finished run: the initial noise x_T, the final samples and (when kept) x after every step, in sampling order
 * (golden-spec "xt_k" = {@code trajectory().get(k)}).
 *
 * @param timesteps  the ORIGINAL timestep value of each step, in sampling order (descending)
 * @param trajectory x after step k, k = 0..steps-1 (empty when not kept); the last equals {@code samples}
 */
public record SamplingResult(Tensor initialNoise, Tensor samples, int[] timesteps, List<Tensor> trajectory) {
    public SamplingResult {
        timesteps = timesteps.clone();
        trajectory = List.copyOf(trajectory);
    }

    @Override public int[] timesteps() { return timesteps.clone(); }
}
