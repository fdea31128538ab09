package io.diffquant.engine.diffusion;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A latent diffusion model (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models"), as DiT's
 * sample.py runs it (facebookresearch/DiT): the denoiser samples latents [N, 4, s, s] (s = 32 for 256 px, 64 for
 * 512 px) with DDPM (250 respaced steps) or DDIM, then the VAE decodes {@code latents / scaling_factor} to RGB in
 * [-1, 1]. Class labels are ImageNet indices ({@link ImageNetClasses}); classifier-free guidance uses the null class
 * {@code num_classes}.
 */
public final class LatentDiffusionPipeline {
    private final DiffusionModel denoiser;
    private final AutoencoderKL vae;

    /** The samples of one run: latents as sampled and the decoded images [N, 3, 8s, 8s]. */
    public record Result(Tensor latents, Tensor images, int[] labels, double samplingSeconds, double decodeSeconds) {}

    public LatentDiffusionPipeline(DiffusionModel denoiser, AutoencoderKL vae) {
        if (denoiser == null || vae == null) throw new IllegalArgumentException("latent pipeline: denoiser and VAE are required");
        if (denoiser.inChannels() != vae.latentChannels()) throw new IllegalArgumentException("latent pipeline: the denoiser takes "
                + denoiser.inChannels() + " channels but the VAE's latents have " + vae.latentChannels());
        if (denoiser.sampleSize() <= 0) throw new IllegalArgumentException("latent pipeline: the denoiser has no fixed sample size");
        this.denoiser = denoiser;
        this.vae = vae;
    }

    /** Loads a model folder (e.g. DiT-XL/2-256) and a VAE folder (e.g. stabilityai/sd-vae-ft-ema). */
    public static LatentDiffusionPipeline load(Path modelFolder, Path vaeFolder) throws IOException {
        return new LatentDiffusionPipeline(ModelFolder.load(modelFolder).model(), AutoencoderKL.load(vaeFolder));
    }

    public DiffusionModel denoiser() { return denoiser; }
    public AutoencoderKL vae() { return vae; }
    public int latentSize() { return denoiser.sampleSize(); }
    public int imageSize() { return denoiser.sampleSize() * vae.downsampleFactor(); }

    /** DiT's sample.py respacing: "ddpm" -> {@code steps} (250 there) sections; "ddim" -> "ddimN" when an integer stride exists. */
    public static String respacing(String sampler, int steps) {
        if (steps < 1) throw new IllegalArgumentException("steps must be >= 1, got " + steps);
        if ("ddim".equals(sampler)) {
            try {
                Respacing.spaceTimesteps(1000, "ddim" + steps);
                return "ddim" + steps;
            } catch (IllegalArgumentException ignored) { /* no integer stride: even sections */ }
        }
        return Integer.toString(steps);
    }

    /**
     * A request as DiT's sample.py builds it: linear schedule (T = 1000), {@code sampler} "ddpm" or "ddim" (eta 0) with
     * {@code steps} respaced steps, labels {@code classes}, classifier-free guidance with {@code cfgScale} when it is
     * not 1 (the official forward_with_cfg: on the first 3 channels; {@link GuidanceMode#DIT_COMPATIBLE}).
     */
    public SampleRequest.Builder request(int[] classes, double cfgScale, String sampler, int steps, long seed) {
        int n = classes == null ? 1 : classes.length;
        SampleRequest.Builder b = SampleRequest.forModel(denoiser, n).sampler(Sampler.named(sampler, 0.0))
                .respacing(respacing(sampler, steps)).seed(seed);
        if (denoiser.numClasses() > 0) {
            if (classes == null) throw new IllegalArgumentException("latent pipeline: the denoiser is class-conditional: give class labels");
            for (int c : classes) if (c < 0 || c >= denoiser.numClasses()) throw new IllegalArgumentException("latent pipeline: class "
                    + c + " outside [0, " + denoiser.numClasses() + ")");
            b.labels(classes.clone());
            if (cfgScale != 1.0) b.cfg(cfgScale, GuidanceMode.DIT_COMPATIBLE);
        } else if (classes != null) {
            throw new IllegalArgumentException("latent pipeline: class labels given but the denoiser is unconditional");
        }
        return b;
    }

    /** Latents [N, C, s, s] in diffusion space -> images [N, 3, 8s, 8s] (VAE decode of latents / scaling_factor). */
    public Tensor decode(Tensor latents) {
        if (latents.rank() != 4 || latents.dim(1) != vae.latentChannels()) throw new IllegalArgumentException("latent pipeline: "
                + "latents must be [N, " + vae.latentChannels() + ", h, w], got " + Arrays.toString(latents.shape()));
        return vae.decode(latents);
    }

    /** Runs the request to the end and decodes its samples. */
    public Result sample(SampleRequest request) {
        long t0 = System.nanoTime();
        SamplingRun run = Sampling.start(request);
        while (run.hasNext()) run.next();
        Tensor latents = run.result();
        long t1 = System.nanoTime();
        Tensor images = decode(latents);
        long t2 = System.nanoTime();
        return new Result(latents, images, request.labels(), (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }
}
