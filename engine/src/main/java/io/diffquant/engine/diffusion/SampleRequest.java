package io.diffquant.engine.diffusion;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * Everything one sampling run needs (ADM's sample-loop arguments plus DiT's sample.py CFG setup). Build it with
 * {@link #builder(Denoiser, int, int, int, int)}.
 *
 * @param denoiser          eps-prediction model, called with ORIGINAL timestep values
 * @param shape             (N, C, H, W) of the samples
 * @param learnSigma        the model returns 2C channels [eps, v] (ADM LEARNED_RANGE); otherwise C channels of eps
 * @param labels            class labels, length N, or null (unconditional)
 * @param guidance          classifier-free guidance, or null for none (then labels are passed as they are)
 * @param schedule          the base noise schedule (T timesteps)
 * @param respacing         ADM respacing string ("ddim10", "250", "10,15,20"; null or "" = all T steps)
 * @param sampler           the sampler {@link Sampling#start} uses (DDIM eta lives in {@link DdimSampler})
 * @param clipDenoised      clamp x̂_0 to [-1, 1] (default false, as DiT's sample.py)
 * @param fixedVariance     DDPM variance when the model does not learn sigma (default FIXED_LARGE as ADM/DiT)
 * @param seed              seed of {@link SeededNoise} (initial noise and step noise)
 * @param firstSampleIndex  global index of sample 0 (noise of sample i is keyed by firstSampleIndex + i), so a big
 *                          job split into batches draws the same noise as one batch
 * @param initialNoise      x_T to start from [N, C, H, W], or null to draw it from the seed
 */
public record SampleRequest(Denoiser denoiser, int[] shape, boolean learnSigma, int[] labels, Guidance guidance,
                            NoiseSchedule schedule, String respacing, Sampler sampler, boolean clipDenoised,
                            VarianceType fixedVariance, long seed, long firstSampleIndex, Tensor initialNoise) {

    public SampleRequest {
        if (denoiser == null) throw new IllegalArgumentException("sample request: denoiser is null");
        if (shape == null || shape.length != 4) throw new IllegalArgumentException("sample request: shape must be (N, C, H, W), got "
                + Arrays.toString(shape));
        for (int d : shape) if (d < 1) throw new IllegalArgumentException("sample request: shape " + Arrays.toString(shape)
                + " has a dimension < 1");
        shape = shape.clone();
        if (schedule == null) throw new IllegalArgumentException("sample request: schedule is null");
        if (sampler == null) sampler = new DdimSampler(0.0);
        if (fixedVariance == null) fixedVariance = VarianceType.FIXED_LARGE;
        if (firstSampleIndex < 0) throw new IllegalArgumentException("sample request: firstSampleIndex must be >= 0, got "
                + firstSampleIndex);
        if (labels != null) {
            if (labels.length != shape[0]) throw new IllegalArgumentException("sample request: " + labels.length
                    + " labels for a batch of " + shape[0]);
            for (int i = 0; i < labels.length; i++) if (labels[i] < 0) throw new IllegalArgumentException(
                    "sample request: label[" + i + "] = " + labels[i] + " is negative");
            labels = labels.clone();
        }
        if (guidance != null) {
            if (labels == null) throw new IllegalArgumentException("sample request: classifier-free guidance needs class labels");
            for (int i = 0; i < labels.length; i++) if (labels[i] > guidance.nullClass()) throw new IllegalArgumentException(
                    "sample request: label[" + i + "] = " + labels[i] + " exceeds the null class " + guidance.nullClass());
            if (guidance.mode() == GuidanceMode.DIT_COMPATIBLE && shape[1] < 3) throw new IllegalArgumentException(
                    "sample request: DiT-compatible guidance needs >= 3 channels, the samples have " + shape[1]);
        }
        if (initialNoise != null) initialNoise.requireShape("sample request initialNoise", shape);
        // Fail early on a bad respacing string (names the string).
        Respacing.spaceTimesteps(schedule.numTimesteps(), respacing);
    }

    @Override public int[] shape() { return shape.clone(); }
    @Override public int[] labels() { return labels == null ? null : labels.clone(); }

    public int batch() { return shape[0]; }
    public int channels() { return shape[1]; }
    /** Output channels the denoiser must return: 2C with learned sigma, else C. */
    public int modelOutChannels() { return learnSigma ? 2 * shape[1] : shape[1]; }
    /** The DDIM eta of the request's sampler (0 for DDPM). */
    public double eta() { return sampler instanceof DdimSampler d ? d.eta() : 0.0; }

    public static Builder builder(Denoiser denoiser, int n, int c, int h, int w) { return new Builder(denoiser, new int[] {n, c, h, w}); }

    /**
     * A builder for {@code n} samples of {@code model}: shape (n, in_channels, sample_size, sample_size), learnSigma
     * from the model, and {@link Builder#cfg(double)} knows the null class (= the model's num_classes).
     */
    public static Builder forModel(DiffusionModel model, int n) {
        if (model == null) throw new IllegalArgumentException("sample request: model is null");
        Builder b = new Builder(model, new int[] {n, model.inChannels(), model.sampleSize(), model.sampleSize()});
        b.learnSigma = model.learnSigma();
        b.numClasses = model.numClasses();
        return b;
    }

    public Builder toBuilder() {
        Builder b = new Builder(denoiser, shape);
        b.learnSigma = learnSigma; b.labels = labels; b.guidance = guidance; b.schedule = schedule; b.respacing = respacing;
        b.sampler = sampler; b.clipDenoised = clipDenoised; b.fixedVariance = fixedVariance; b.seed = seed;
        b.firstSampleIndex = firstSampleIndex; b.initialNoise = initialNoise;
        return b;
    }

    /** Defaults: linear schedule T = 1000, respacing "" (all steps), DDIM eta 0, no guidance, clipDenoised false, seed 0. */
    public static final class Builder {
        private Denoiser denoiser;
        private int[] shape;
        private boolean learnSigma;
        private int[] labels;
        private Guidance guidance;
        private NoiseSchedule schedule;
        private String respacing = "";
        private Sampler sampler = new DdimSampler(0.0);
        private boolean clipDenoised;
        private VarianceType fixedVariance = VarianceType.FIXED_LARGE;
        private long seed;
        private long firstSampleIndex;
        private Tensor initialNoise;
        private int numClasses = -1;

        private Builder(Denoiser denoiser, int[] shape) { this.denoiser = denoiser; this.shape = shape.clone(); }

        public Builder denoiser(Denoiser d) { this.denoiser = d; return this; }
        public Builder shape(int n, int c, int h, int w) { this.shape = new int[] {n, c, h, w}; return this; }
        public Builder learnSigma(boolean v) { this.learnSigma = v; return this; }
        public Builder labels(int... y) { this.labels = y; return this; }
        public Builder guidance(Guidance g) { this.guidance = g; return this; }
        /** All-channel CFG with scale s and null class numClasses. */
        /** All-channel CFG with the null class of the model given to {@link #forModel}. */
        public Builder cfg(double scale) { return cfg(scale, GuidanceMode.ALL_CHANNELS); }
        /** CFG with the null class of the model given to {@link #forModel}. */
        public Builder cfg(double scale, GuidanceMode mode) {
            if (numClasses <= 0) throw new IllegalArgumentException("sample request: classifier-free guidance needs a "
                    + "class-conditional model (num_classes > 0); use cfg(scale, mode, numClasses) without forModel");
            return cfg(scale, mode, numClasses);
        }
        public Builder cfg(double scale, int numClasses) { this.guidance = Guidance.of(scale, numClasses); return this; }
        public Builder cfg(double scale, GuidanceMode mode, int numClasses) { this.guidance = new Guidance(scale, mode, numClasses); return this; }
        public Builder schedule(NoiseSchedule s) { this.schedule = s; return this; }
        public Builder respacing(String r) { this.respacing = r; return this; }
        public Builder sampler(Sampler s) { this.sampler = s; return this; }
        public Builder ddim(double eta) { this.sampler = new DdimSampler(eta); return this; }
        public Builder ddpm() { this.sampler = new DdpmSampler(); return this; }
        public Builder clipDenoised(boolean v) { this.clipDenoised = v; return this; }
        public Builder fixedVariance(VarianceType v) { this.fixedVariance = v; return this; }
        public Builder seed(long s) { this.seed = s; return this; }
        public Builder firstSampleIndex(long i) { this.firstSampleIndex = i; return this; }
        public Builder initialNoise(Tensor x) { this.initialNoise = x; return this; }

        public SampleRequest build() {
            NoiseSchedule s = schedule != null ? schedule : NoiseSchedule.linear(1000);
            return new SampleRequest(denoiser, shape, learnSigma, labels, guidance, s, respacing, sampler, clipDenoised,
                    fixedVariance, seed, firstSampleIndex, initialNoise);
        }
    }
}
