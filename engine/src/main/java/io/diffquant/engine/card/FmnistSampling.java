package io.diffquant.engine.card;

import io.diffquant.engine.diffusion.DdimSampler;
import io.diffquant.engine.diffusion.GuidanceMode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.diffusion.SamplingStep;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Deterministic DDIM sampling (Song et al. 2021, eta 0) of a 28x28x1 Fashion-MNIST model for its model card, in
 * batches, with classifier-free guidance on every channel for class-conditional models (Ho and Salimans 2022, as
 * DiT's {@code sample.py} but with the guidance applied to the single image channel). The noise of image {@code i}
 * is keyed by (seed, i) ({@link io.diffquant.engine.diffusion.SeededNoise}), so splitting a job into batches draws
 * the same noise as one batch.
 */
public final class FmnistSampling {
    private FmnistSampling() {}

    /**
     * How to sample.
     *
     * @param steps    DDIM steps (respacing of the schedule's T steps, {@link #respacing})
     * @param cfg      classifier-free guidance scale; 1 = none (and the only value allowed for unconditional models)
     * @param seed     noise seed
     * @param batch    images per denoiser batch (with CFG the denoiser sees twice as many rows)
     * @param schedule the training noise schedule
     */
    public record Settings(int steps, double cfg, long seed, int batch, NoiseSchedule schedule) {
        public Settings {
            if (steps < 1) throw new IllegalArgumentException("sampling: steps must be >= 1, got " + steps);
            if (!(cfg >= 1.0) || !Double.isFinite(cfg)) throw new IllegalArgumentException("sampling: CFG scale must be a finite number >= 1, got " + cfg);
            if (batch < 1) throw new IllegalArgumentException("sampling: batch must be >= 1, got " + batch);
            if (schedule == null) throw new IllegalArgumentException("sampling: schedule is null");
        }

        public Settings withCfg(double c) { return new Settings(steps, c, seed, batch, schedule); }
        public Settings withSteps(int s) { return new Settings(s, cfg, seed, batch, schedule); }
        public Settings withSeed(long s) { return new Settings(steps, cfg, s, batch, schedule); }
        public Settings withBatch(int b) { return new Settings(steps, cfg, seed, b, schedule); }
    }

    /** Called after every sampling step. */
    @FunctionalInterface
    public interface Progress {
        /**
         * @param firstImage first image of the current batch (0-based)
         * @param batchSize  images in the current batch
         * @param total      images of the whole job
         * @param step       steps done in this batch (1-based)
         * @param steps      steps per batch
         */
        void step(int firstImage, int batchSize, int total, int step, int steps);
    }

    /** The ADM respacing string for {@code steps} DDIM steps of T: "ddimN" when T / N is an integer stride, else N sections. */
    public static String respacing(int numTimesteps, int steps) {
        String ddim = "ddim" + steps;
        try {
            Respacing.spaceTimesteps(numTimesteps, ddim);
            return ddim;
        } catch (IllegalArgumentException noIntegerStride) {
            return Integer.toString(steps);
        }
    }

    /** Labels 0, 1, ..., k-1, 0, 1, ... for n images (k = numClasses), or null when numClasses is 0 (unconditional). */
    public static int[] cycleLabels(int n, int numClasses) {
        if (numClasses <= 0) return null;
        int[] y = new int[n];
        for (int i = 0; i < n; i++) y[i] = i % numClasses;
        return y;
    }

    /** Refuses models that do not make [N, 1, 28, 28] images or whose CFG setting does not fit. */
    public static void requireFmnistModel(DiffusionModel m, Settings s, String where) {
        if (m.inChannels() != 1 || m.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(where
                + ": model cards measure Fashion-MNIST images [N, 1, 28, 28], but this " + m.architecture() + " makes [N, "
                + m.inChannels() + ", " + m.sampleSize() + ", " + m.sampleSize() + "]");
        if (s != null && s.cfg() != 1.0 && m.numClasses() == 0) throw new IllegalArgumentException(where
                + ": CFG scale " + s.cfg() + " given for an unconditional model (use 1)");
    }

    /**
     * Samples {@code count} images, raw (not clamped), [count, 1, 28, 28].
     *
     * @param firstIndex global index of image 0 (its noise key)
     * @param labels     class of each image (length count) for class-conditional models, else null
     * @param progress   called after every step; may be null
     */
    public static Tensor sample(DiffusionModel m, int count, long firstIndex, int[] labels, Settings s, Progress progress) {
        requireFmnistModel(m, s, m.architecture());
        if (count < 1) throw new IllegalArgumentException("sampling: count must be >= 1, got " + count);
        if (m.numClasses() > 0 && (labels == null || labels.length != count)) throw new IllegalArgumentException(
                "sampling: a class-conditional model needs " + count + " labels, got " + (labels == null ? "none" : labels.length));
        if (m.numClasses() == 0 && labels != null) throw new IllegalArgumentException("sampling: labels given for an unconditional model");
        String respacing = respacing(s.schedule().numTimesteps(), s.steps());
        List<Tensor> parts = new ArrayList<>();
        for (int from = 0; from < count; from += s.batch()) {
            int n = Math.min(s.batch(), count - from);
            SampleRequest.Builder b = SampleRequest.forModel(m, n).sampler(new DdimSampler(0.0)).respacing(respacing)
                    .schedule(s.schedule()).seed(s.seed()).firstSampleIndex(firstIndex + from);
            if (labels != null) {
                b.labels(Arrays.copyOfRange(labels, from, from + n));
                if (s.cfg() != 1.0) b.cfg(s.cfg(), GuidanceMode.ALL_CHANNELS);
            }
            SamplingRun run = Sampling.start(b.build());
            while (run.hasNext()) {
                SamplingStep st = run.next();
                if (progress != null) progress.step(from, n, count, st.index() + 1, st.totalSteps());
            }
            parts.add(run.result());
        }
        return parts.size() == 1 ? parts.get(0) : Tensor.concatRows(parts.toArray(new Tensor[0]));
    }

    /** A copy with every value clamped to [-1, 1], as when written to PNG (the metrics measure clamped images). */
    public static Tensor clampUnit(Tensor x) {
        float[] d = x.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = d[i] > 1f ? 1f : d[i] < -1f ? -1f : d[i];
        return Tensor.of(d, x.shape());
    }
}
