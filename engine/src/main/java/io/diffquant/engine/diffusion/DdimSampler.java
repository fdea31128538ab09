package io.diffquant.engine.diffusion;

/**
 * DDIM sampling (Song et al. 2021, Eq. 12; ADM's ddim_sample, facebookresearch/DiT diffusion/gaussian_diffusion.py):
 * eta = 0 is deterministic, eta &gt; 0 adds σ z with σ = eta·sqrt((1-ᾱ')/(1-ᾱ))·sqrt(1-ᾱ/ᾱ').
 */
public record DdimSampler(double eta) implements Sampler {
    public DdimSampler {
        if (!(eta >= 0) || !Double.isFinite(eta)) throw new IllegalArgumentException("DDIM eta must be finite and >= 0, got " + eta);
    }

    public DdimSampler() { this(0.0); }

    @Override public String toString() { return "ddim(eta=" + eta + ")"; }
}
