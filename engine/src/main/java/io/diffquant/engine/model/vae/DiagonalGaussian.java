package io.diffquant.engine.model.vae;

import io.diffquant.engine.diffusion.SeededNoise;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.VaeOps;

import java.util.Arrays;

/**
 * The VAE posterior q(z | x), diffusers' DiagonalGaussianDistribution (src/diffusers/models/autoencoders/vae.py):
 * mean and logvar [N, latent_channels, h, w] in the VAE's own (unscaled) latent space, logvar already clamped to
 * [-30, 20]; std = exp(0.5 logvar); sample = mean + std * noise.
 */
public record DiagonalGaussian(Tensor mean, Tensor logvar) {
    /** SeededNoise stream of the posterior samples (0 and 1 are the sampler's initial and per-step noise). */
    public static final int NOISE_STREAM = 2;

    public DiagonalGaussian {
        if (!mean.sameShape(logvar)) throw new IllegalArgumentException("posterior mean " + Arrays.toString(mean.shape())
                + " and logvar " + Arrays.toString(logvar.shape()) + " differ in shape");
    }

    /** From the encoder moments [N, 2C, h, w] = cat(mean, logvar): chunk along channels, clamp logvar. */
    public static DiagonalGaussian fromMoments(Tensor moments) {
        Tensor[] ml = VaeOps.chunkChannels(moments);
        return new DiagonalGaussian(ml[0], VaeOps.clamp(ml[1], VaeOps.LOGVAR_MIN, VaeOps.LOGVAR_MAX));
    }

    public Tensor std() { return VaeOps.stdFromLogvar(logvar); }

    /** mean + std * noise with the given standard normal noise (same shape as the mean). */
    public Tensor sample(Tensor noise) { return VaeOps.gaussianSample(mean, std(), noise); }

    /**
     * A sample with seeded noise: batch element i uses sequence (seed, {@link #NOISE_STREAM}, sample i,
     * {@link SeededNoise#INITIAL_STEP_KEY}), so a sample does not depend on its batch or the thread count.
     */
    public Tensor sample(long seed) { return sample(noise(seed, mean.shape())); }

    /** The noise {@link #sample(long)} uses for a posterior of this shape. */
    public static Tensor noise(long seed, int... shape) {
        return new SeededNoise(seed).normal(NOISE_STREAM, 0, SeededNoise.INITIAL_STEP_KEY, shape);
    }
}
