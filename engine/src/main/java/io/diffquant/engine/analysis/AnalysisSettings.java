package io.diffquant.engine.analysis;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.diffusion.RespacedSchedule;
import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampler;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;

import java.util.Locale;

/**
 * The sampling set-up every analysis of an {@link AnalysisSession} shares (TFMQ-DM's analyses run on the sampler's
 * own timesteps, ALGORITHMS.md §6): sampler and step count (which fix the timestep VALUES every per-timestep quantity is
 * keyed by), schedule, classifier-free guidance, the seed of the initial and step noise, and how many samples the
 * trajectory analyses (trajectory deviation, layer sensitivity, activation histograms) use.
 *
 * @param sampler  "ddim" or "ddpm"
 * @param steps    sampling steps ("ddimN" respacing when N divides 1000, else N evenly spaced sections)
 * @param eta      DDIM eta (0 = deterministic)
 * @param schedule noise schedule name (linear, scaled_linear, cosine)
 * @param cfgScale classifier-free guidance scale; 1 = none. With guidance the null class is among the feature labels.
 * @param seed     seed of the initial noise x_T and of the step noise ({@link io.diffquant.engine.diffusion.SeededNoise})
 * @param samples  samples of the trajectory analyses (labels cycle 0..classes-1)
 * @param batch    samples per denoiser call when sampling
 */
public record AnalysisSettings(String sampler, int steps, double eta, String schedule, double cfgScale, long seed, int samples, int batch) {
    /** DDIM 50 steps, eta 0, linear schedule, no guidance, seed 0, 8 samples in batches of 8. */
    public static final AnalysisSettings DEFAULT = new AnalysisSettings("ddim", 50, 0.0, "linear", 1.0, 0, 8, 8);

    public AnalysisSettings {
        if (sampler == null) sampler = "ddim";
        sampler = sampler.trim().toLowerCase(Locale.ROOT);
        if (!sampler.equals("ddim") && !sampler.equals("ddpm")) throw new IllegalArgumentException("analysis settings: sampler must be 'ddim' or 'ddpm', got '" + sampler + "'");
        if (steps < 1) throw new IllegalArgumentException("analysis settings: steps must be >= 1, got " + steps);
        if (!(eta >= 0) || !Double.isFinite(eta)) throw new IllegalArgumentException("analysis settings: eta must be >= 0, got " + eta);
        if (schedule == null) schedule = "linear";
        if (!(cfgScale >= 1) || !Double.isFinite(cfgScale)) throw new IllegalArgumentException("analysis settings: cfg scale must be >= 1 (1 = none), got " + cfgScale);
        if (samples < 1) throw new IllegalArgumentException("analysis settings: samples must be >= 1, got " + samples);
        if (batch < 1) throw new IllegalArgumentException("analysis settings: batch must be >= 1, got " + batch);
        NoiseSchedule.named(schedule, 1000);   // fails early on a bad name
    }

    public AnalysisSettings withSteps(int s) { return new AnalysisSettings(sampler, s, eta, schedule, cfgScale, seed, samples, batch); }
    public AnalysisSettings withSamples(int n) { return new AnalysisSettings(sampler, steps, eta, schedule, cfgScale, seed, n, batch); }
    public AnalysisSettings withSeed(long s) { return new AnalysisSettings(sampler, steps, eta, schedule, cfgScale, s, samples, batch); }
    public AnalysisSettings withBatch(int b) { return new AnalysisSettings(sampler, steps, eta, schedule, cfgScale, seed, samples, b); }
    public AnalysisSettings withCfg(double s) { return new AnalysisSettings(sampler, steps, eta, schedule, s, seed, samples, batch); }

    /** The respacing string: "ddimN" when a DDIM stride of 1000/N exists, else "N" (as the sample command). */
    public String respacing() {
        if (sampler.equals("ddim")) {
            try {
                Respacing.spaceTimesteps(1000, "ddim" + steps);
                return "ddim" + steps;
            } catch (IllegalArgumentException ignored) {
                // no integer stride: evenly spaced sections
            }
        }
        return Integer.toString(steps);
    }

    public NoiseSchedule noiseSchedule() { return NoiseSchedule.named(schedule, 1000); }

    /** The ORIGINAL timestep values of the sampling steps, in sampling order (descending). */
    public int[] timesteps() {
        RespacedSchedule rs = Respacing.respace(noiseSchedule(), respacing());
        int k = rs.size();
        int[] out = new int[k];
        for (int i = 0; i < k; i++) out[i] = rs.timestep(k - 1 - i);
        return out;
    }

    /** Sample labels: i mod classes for class-conditional models, else null. */
    public static int[] sampleLabels(DiffusionModel model, int from, int n) {
        if (model.numClasses() <= 0) return null;
        int[] y = new int[n];
        for (int i = 0; i < n; i++) y[i] = (from + i) % model.numClasses();
        return y;
    }

    /** A sampling request for samples [from, from + n) of this set-up, denoised by {@code denoiser}. */
    public SampleRequest request(DiffusionModel model, Denoiser denoiser, int from, int n) {
        SampleRequest.Builder b = SampleRequest.forModel(model, n).denoiser(denoiser).sampler(Sampler.named(sampler, eta))
                .respacing(respacing()).schedule(noiseSchedule()).seed(seed).firstSampleIndex(from);
        int[] y = sampleLabels(model, from, n);
        if (y != null) {
            b.labels(y);
            if (cfgScale != 1.0) b.cfg(cfgScale);
        } else if (cfgScale != 1.0) {
            throw new IllegalArgumentException("analysis settings: cfg scale " + cfgScale + " given but the " + model.architecture()
                    + " is unconditional");
        }
        return b.build();
    }

    /** e.g. "ddim50 (eta 0.0), linear, cfg 1.0, seed 0, 8 samples". */
    public String describe() {
        return String.format(Locale.ROOT, "%s %s (eta %s), %s schedule, cfg %s, seed %d, %d samples", sampler, respacing(), eta, schedule,
                cfgScale, seed, samples);
    }
}
