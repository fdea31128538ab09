package io.diffquant.engine.diffusion;

import java.util.Locale;

/**
 * A reverse-diffusion sampler: turns a {@link SampleRequest} into a pull-based {@link SamplingRun}
 * (ARCHITECTURE.md "diffusion"; ADM's p_sample_loop_progressive / ddim_sample_loop_progressive).
 * {@link #start} uses THIS sampler's settings; {@link Sampling#start(SampleRequest)} uses the request's sampler.
 */
public sealed interface Sampler permits DdpmSampler, DdimSampler {

    /** Validates the request, draws (or takes) x_T and returns the run; no model call happens before next(). */
    default SamplingRun start(SampleRequest request) {
        return new SamplingRun(this, request);
    }

    /** "ddpm" or "ddim" (eta applies to DDIM only). */
    static Sampler named(String name, double eta) {
        if (name == null) throw new IllegalArgumentException("sampler name is null; expected ddpm or ddim");
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "ddpm" -> new DdpmSampler();
            case "ddim" -> new DdimSampler(eta);
            default -> throw new IllegalArgumentException("unknown sampler '" + name + "'; expected ddpm or ddim");
        };
    }
}
