package io.diffquant.engine.tensor;

import java.util.Arrays;

/**
 * The element-wise and layout ops of the KL autoencoder beyond {@link Ops}/{@link ConvOps}: the diagonal Gaussian
 * posterior (huggingface/diffusers src/diffusers/models/autoencoders/vae.py, DiagonalGaussianDistribution: chunk
 * along channels, logvar clamped to [-30, 20], std = exp(0.5 logvar), sample = mean + std * noise) and the latent
 * scaling of the Stable Diffusion pipelines (z / scaling_factor + shift_factor before decoding, the inverse after
 * encoding). Each op rounds like the PyTorch expression it mirrors (one float rounding per PyTorch op).
 */
public final class VaeOps {
    private VaeOps() {}

    private static final int EW_CHUNK = 1 << 14;

    /** diffusers' logvar clamp range. */
    public static final float LOGVAR_MIN = -30f, LOGVAR_MAX = 20f;

    /**
     * torch.chunk(x, 2, dim=1) of an [N, 2C, ...] tensor: returns {x[:, :C], x[:, C:]} as copies.
     */
    public static Tensor[] chunkChannels(Tensor x) {
        if (x.rank() < 2 || x.dim(1) % 2 != 0) throw new IllegalArgumentException(
                "chunkChannels: expected [N, 2C, ...] with an even channel count, got " + Arrays.toString(x.shape()));
        int n = x.dim(0), c2 = x.dim(1), c = c2 / 2, inner = n == 0 || c2 == 0 ? 0 : x.size() / (n * c2);
        int[] s = x.shape();
        s[1] = c;
        Tensor a = Tensor.zeros(s), b = Tensor.zeros(s);
        float[] xd = x.data(), ad = a.data(), bd = b.data();
        int half = c * inner;
        for (int i = 0; i < n; i++) {
            System.arraycopy(xd, i * 2 * half, ad, i * half, half);
            System.arraycopy(xd, i * 2 * half + half, bd, i * half, half);
        }
        return new Tensor[] {a, b};
    }

    /** torch.clamp(x, lo, hi); NaN stays NaN as in PyTorch. */
    public static Tensor clamp(Tensor x, float lo, float hi) {
        if (!(lo <= hi)) throw new IllegalArgumentException("clamp: lower bound " + lo + " above upper bound " + hi);
        Tensor y = Tensor.zeros(x.shape());
        float[] xd = x.data(), yd = y.data();
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> {
            for (int i = p; i < q; i++) {
                float v = xd[i];
                yd[i] = v < lo ? lo : v > hi ? hi : v;
            }
        });
        return y;
    }

    /** std = exp(0.5 * logvar) (two roundings, as {@code torch.exp(0.5 * self.logvar)}). */
    public static Tensor stdFromLogvar(Tensor logvar) {
        Tensor y = Tensor.zeros(logvar.shape());
        float[] ld = logvar.data(), yd = y.data();
        Parallel.forRange(ld.length, EW_CHUNK, (p, q) -> {
            for (int i = p; i < q; i++) yd[i] = (float) Math.exp(0.5f * ld[i]);
        });
        return y;
    }

    /** mean + std * noise, element-wise (diffusers' {@code DiagonalGaussianDistribution.sample}). */
    public static Tensor gaussianSample(Tensor mean, Tensor std, Tensor noise) {
        if (!mean.sameShape(std) || !mean.sameShape(noise)) throw new IllegalArgumentException("gaussianSample: mean "
                + Arrays.toString(mean.shape()) + ", std " + Arrays.toString(std.shape()) + ", noise " + Arrays.toString(noise.shape()));
        Tensor y = Tensor.zeros(mean.shape());
        float[] md = mean.data(), sd = std.data(), nd = noise.data(), yd = y.data();
        Parallel.forRange(md.length, EW_CHUNK, (p, q) -> {
            for (int i = p; i < q; i++) yd[i] = md[i] + sd[i] * nd[i];
        });
        return y;
    }

    /**
     * Diffusion-space latents to the VAE's own latent space: z = latents / scalingFactor + shift (the shift term is
     * skipped when 0, as pipelines without a shift_factor do not add it).
     */
    public static Tensor unscaleLatents(Tensor latents, float scalingFactor, float shift) {
        requireScaling(scalingFactor, shift);
        Tensor y = Tensor.zeros(latents.shape());
        float[] xd = latents.data(), yd = y.data();
        boolean addShift = shift != 0f;
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> {
            for (int i = p; i < q; i++) {
                float v = xd[i] / scalingFactor;
                yd[i] = addShift ? v + shift : v;
            }
        });
        return y;
    }

    /** The VAE's latents to diffusion space: latents = (z - shift) * scalingFactor (inverse of {@link #unscaleLatents}). */
    public static Tensor scaleLatents(Tensor z, float scalingFactor, float shift) {
        requireScaling(scalingFactor, shift);
        Tensor y = Tensor.zeros(z.shape());
        float[] xd = z.data(), yd = y.data();
        boolean subShift = shift != 0f;
        Parallel.forRange(xd.length, EW_CHUNK, (p, q) -> {
            for (int i = p; i < q; i++) yd[i] = (subShift ? xd[i] - shift : xd[i]) * scalingFactor;
        });
        return y;
    }

    private static void requireScaling(float scalingFactor, float shift) {
        if (!(scalingFactor > 0f) || !Float.isFinite(scalingFactor)) throw new IllegalArgumentException(
                "latent scaling factor must be positive and finite, got " + scalingFactor);
        if (!Float.isFinite(shift)) throw new IllegalArgumentException("latent shift factor must be finite, got " + shift);
    }
}
