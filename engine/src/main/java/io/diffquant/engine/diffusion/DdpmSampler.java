package io.diffquant.engine.diffusion;

/**
 * DDPM ancestral sampling (Ho et al. 2020; ADM's p_sample with LEARNED_RANGE or fixed variance,
 * facebookresearch/DiT diffusion/gaussian_diffusion.py): x_{t'} = μ̃(x_t, x̂_0) + σ z, no noise at the last step.
 */
public record DdpmSampler() implements Sampler {
    @Override public String toString() { return "ddpm"; }
}
