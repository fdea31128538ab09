package io.diffquant.engine.diffusion;

import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.tensor.Tensor;

import java.util.List;

/**
 * A finished run: the initial noise x_T, the final samples and (when kept) x after every step, in sampling order
 * (golden-spec "xt_k" = {@code trajectory().get(k)}), and how the denoiser computed them.
 *
 * @param timesteps  the ORIGINAL timestep value of each step, in sampling order (descending)
 * @param trajectory x after step k, k = 0..steps-1 (empty when not kept); the last equals {@code samples}
 * @param execution  backend and arithmetic of the denoiser: FP32, fake quantization or real low-bit kernels
 *                   ({@link ExecutionInfo#label()} is what the CLI and GUI show)
 */
public record SamplingResult(Tensor initialNoise, Tensor samples, int[] timesteps, List<Tensor> trajectory, ExecutionInfo execution) {
    /** Stands for results made without recording the execution. */
    public static final ExecutionInfo NOT_RECORDED = new ExecutionInfo("jvm", "jvm", ExecutionInfo.Execution.FULL_PRECISION, 0, 0, "",
            "execution not recorded");

    public SamplingResult {
        timesteps = timesteps.clone();
        trajectory = List.copyOf(trajectory);
        if (execution == null) execution = NOT_RECORDED;
    }

    /** A result without a recorded execution ({@link #NOT_RECORDED}). */
    public SamplingResult(Tensor initialNoise, Tensor samples, int[] timesteps, List<Tensor> trajectory) {
        this(initialNoise, samples, timesteps, trajectory, NOT_RECORDED);
    }

    @Override public int[] timesteps() { return timesteps.clone(); }
}
