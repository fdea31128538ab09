package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The denoising objective of DDPM/ADM/DiT (facebookresearch/DiT diffusion/gaussian_diffusion.py
 * {@code training_losses} with loss_type MSE): t uniform over the T training steps, x_t = sqrt(ᾱ_t) x_0 +
 * sqrt(1 - ᾱ_t) ε, loss = mean (ε̂ - ε)². With a learned variance (model output 2C channels) the
 * {@link LearnedVarianceLoss} term is added with weight {@code vlbWeight} (1 in DiT; ADM's hybrid loss), the mean
 * entering it with a stop-gradient. For class-conditional models each label is replaced by the null class
 * (index numClasses) with probability {@code classDropoutProb}, which trains the unconditional branch for
 * classifier-free guidance (DiT's LabelEmbedder.token_drop).
 *
 * <p>Draws per step, in this order: B timesteps, B·C·H·W normals, B uniforms for label dropout.
 */
public final class DiffusionObjective implements Objective {
    public record Config(NoiseSchedule schedule, double classDropoutProb, double vlbWeight) {
        public Config {
            if (schedule == null) throw new IllegalArgumentException("diffusion.schedule must be given");
            if (!(classDropoutProb >= 0 && classDropoutProb <= 1)) throw new IllegalArgumentException(
                    "diffusion.classDropoutProb must be in [0, 1], got " + classDropoutProb);
            if (!(vlbWeight >= 0)) throw new IllegalArgumentException("diffusion.vlbWeight must be >= 0, got " + vlbWeight);
        }

        /** DiT's training setup: linear betas 1e-4..0.02 over T = 1000, label dropout 0.1, VLB weight 1. */
        public static Config dit() { return new Config(NoiseSchedule.linear(1000), 0.1, 1.0); }
    }

    private final Denoiser model;
    private final int channels, numClasses;
    private final boolean learnSigma;
    private final Config config;

    /**
     * @param numClasses real classes of a class-conditional model (label numClasses = null class); 0 = unconditional
     * @param learnSigma the model outputs 2C channels: ε and the variance interpolation v
     */
    public DiffusionObjective(Denoiser model, int channels, int numClasses, boolean learnSigma, Config config) {
        if (channels < 1) throw new IllegalArgumentException("channels must be >= 1, got " + channels);
        if (numClasses < 0) throw new IllegalArgumentException("numClasses must be >= 0, got " + numClasses);
        this.model = model;
        this.channels = channels;
        this.numClasses = numClasses;
        this.learnSigma = learnSigma;
        this.config = config;
    }

    public static DiffusionObjective forModel(DiffusionModel m, Config config) {
        return new DiffusionObjective(m, m.inChannels(), m.numClasses(), m.learnSigma(), config);
    }

    public Config config() { return config; }

    @Override public StepLoss loss(Batch batch, TrainRng rng) {
        Tensor x0 = batch.images();
        int b = x0.dim(0);
        if (x0.dim(1) != channels) throw new IllegalArgumentException("diffusion objective: images have " + x0.dim(1)
                + " channels, the model " + channels);
        NoiseSchedule s = config.schedule();
        int[] t = new int[b];
        for (int i = 0; i < b; i++) t[i] = rng.nextInt(s.numTimesteps());
        Tensor noise = Tensor.zeros(x0.shape());
        rng.gaussian(noise.data());
        double[] drop = new double[b];
        for (int i = 0; i < b; i++) drop[i] = rng.nextDouble();
        Tensor xt = qSample(x0, noise, t, s);
        int[] y = null;
        if (numClasses > 0) {
            if (batch.labels() == null) throw new IllegalArgumentException("diffusion objective: the model is class-conditional ("
                    + numClasses + " classes) but the dataset has no labels");
            y = new int[b];
            for (int i = 0; i < b; i++) {
                int l = batch.labels()[i];
                if (l < 0 || l >= numClasses) throw new IllegalArgumentException("diffusion objective: label " + l
                        + " of dataset image " + batch.indices()[i] + " outside [0, " + numClasses + ")");
                y[i] = drop[i] < config.classDropoutProb() ? numClasses : l;
            }
        }
        float[] tv = new float[b];
        for (int i = 0; i < b; i++) tv[i] = t[i];
        Tensor out = model.forward(xt, tv, y);
        int outC = learnSigma ? 2 * channels : channels;
        int[] want = x0.shape();
        want[1] = outC;
        if (!Arrays.equals(out.shape(), want)) throw new IllegalStateException("diffusion objective: the model returned "
                + Arrays.toString(out.shape()) + ", expected " + Arrays.toString(want) + (learnSigma ? " (learned sigma: 2C channels)" : ""));
        Map<String, Double> terms = new LinkedHashMap<>();
        if (!learnSigma) {
            Tensor mse = Ops.mseLoss(out, noise);
            terms.put("mse", (double) mse.data()[0]);
            return new StepLoss(mse, terms);
        }
        Tensor eps = Ops.sliceChannels(out, 0, channels), v = Ops.sliceChannels(out, channels, 2 * channels);
        Tensor mse = Ops.mseLoss(eps, noise);
        terms.put("mse", (double) mse.data()[0]);
        if (config.vlbWeight() == 0) return new StepLoss(mse, terms);
        Tensor vlb = LearnedVarianceLoss.loss(eps, v, x0, xt, t, s);
        terms.put("vlb", (double) vlb.data()[0]);
        Tensor loss = config.vlbWeight() == 1.0 ? Ops.add(mse, vlb) : Ops.add(mse, Ops.scale(vlb, (float) config.vlbWeight()));
        return new StepLoss(loss, terms);
    }

    /** x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε per sample, coefficients rounded to float32 as ADM's _extract_into_tensor. */
    public static Tensor qSample(Tensor x0, Tensor noise, int[] t, NoiseSchedule s) {
        int b = x0.dim(0), per = x0.size() / b;
        Tensor xt = Tensor.zeros(x0.shape());
        float[] xd = x0.data(), nd = noise.data(), od = xt.data();
        for (int i = 0; i < b; i++) {
            double ac = s.alphaCumprod(t[i]);
            float ca = (float) Math.sqrt(ac), cb = (float) Math.sqrt(1.0 - ac);
            for (int j = i * per; j < (i + 1) * per; j++) od[j] = ca * xd[j] + cb * nd[j];
        }
        return xt;
    }
}
