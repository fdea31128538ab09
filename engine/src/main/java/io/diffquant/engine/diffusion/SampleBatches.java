package io.diffquant.engine.diffusion;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.BooleanSupplier;
import java.util.function.UnaryOperator;

/**
 * Samples N images of a model in batches of a fixed size, the loop of the CLI's {@code sample} and {@code eval} and of
 * the results runner (DiT's sample_ddp.py: labels per image, noise of image i keyed by (seed, i) through
 * {@link SampleRequest#firstSampleIndex()}, so the images do not depend on the batching). A quantized model is sampled
 * the same way: its hooks are attached to the model.
 */
public final class SampleBatches {
    private SampleBatches() {}

    /**
     * How the images are sampled.
     * @param sampler  ddim or ddpm
     * @param steps    sampling steps: respacing {@code ddim<steps>} of the 1000 training steps when it exists (DDIM),
     *                 else evenly spaced ({@link #respacingFor})
     * @param eta      DDIM eta
     * @param schedule noise schedule name (linear, scaled_linear, cosine)
     * @param cfg      classifier-free guidance scale (1 = none; used for class-conditional models only)
     * @param cfgMode  which eps channels guidance combines
     * @param seed     noise seed
     * @param batch    images per denoiser batch
     */
    public record Settings(String sampler, int steps, double eta, String schedule, double cfg, GuidanceMode cfgMode, long seed, int batch) {
        public Settings {
            if (steps < 1) throw new IllegalArgumentException("sampling steps must be >= 1, got " + steps);
            if (batch < 1) throw new IllegalArgumentException("sampling batch must be >= 1, got " + batch);
            if (!(cfg >= 0) || Double.isInfinite(cfg)) throw new IllegalArgumentException("guidance scale must be finite and >= 0, got " + cfg);
            if (cfgMode == null) cfgMode = GuidanceMode.ALL_CHANNELS;
            Sampler.named(sampler, eta);                   // fails early on an unknown sampler
            NoiseSchedule.named(schedule, 1000);           // and on an unknown schedule
        }

        /** DDIM (eta 0), linear schedule, all-channel guidance. */
        public static Settings ddim(int steps, double cfg, long seed, int batch) {
            return new Settings("ddim", steps, 0, "linear", cfg, GuidanceMode.ALL_CHANNELS, seed, batch);
        }

        public Settings withBatch(int b) { return new Settings(sampler, steps, eta, schedule, cfg, cfgMode, seed, b); }
        public Settings withSeed(long s) { return new Settings(sampler, steps, eta, schedule, cfg, cfgMode, s, batch); }
        public Settings withCfg(double c) { return new Settings(sampler, steps, eta, schedule, c, cfgMode, seed, batch); }

        /** The respacing string these settings sample with. */
        public String respacing() { return respacingFor(sampler, steps); }

        /** E.g. "ddim, ddim50 (50 steps), eta 0.0, schedule linear, cfg 1.5, seed 0". */
        public String describe(boolean conditional) {
            return String.format(Locale.ROOT, "%s, %s (%d steps), eta %s, schedule %s, %s, seed %d", sampler, respacing(), steps, eta, schedule,
                    conditional && cfg != 1.0 ? "cfg " + cfg + (cfgMode == GuidanceMode.DIT_COMPATIBLE ? " (dit)" : "") : "no guidance", seed);
        }
    }

    /** Progress of one batch step: images [from, from + n) of count, the sampler step. */
    @FunctionalInterface
    public interface Listener {
        void step(int from, int n, int count, SamplingStep step);
    }

    /** {@code ddim<steps>} when that respacing exists (DDIM), else the evenly spaced section respacing "steps". */
    public static String respacingFor(String sampler, int steps) {
        String ddim = "ddim" + steps;
        if ("ddim".equals(sampler)) {
            try {
                Respacing.spaceTimesteps(1000, ddim);
                return ddim;
            } catch (IllegalArgumentException ignored) { /* no integer stride: fall back to section spacing */ }
        }
        return Integer.toString(steps);
    }

    /**
     * The label of every image: {@code classes} cycled over count (null or empty: 0..classLimit-1 cycled) for a
     * class-conditional model, null for an unconditional one.
     * @param classLimit labels cycle below min(classLimit, num_classes) when no classes are given (e.g. 10 for the
     *                   Fashion-MNIST classifier)
     * @throws IllegalArgumentException for a label outside [0, num_classes) or classes given to an unconditional model
     */
    public static int[] labels(DiffusionModel m, int count, List<Integer> classes, int classLimit) {
        if (m.numClasses() <= 0) {
            if (classes != null && !classes.isEmpty()) throw new IllegalArgumentException("class labels given but the "
                    + m.architecture() + " is an unconditional model");
            return null;
        }
        int cycle = Math.min(m.numClasses(), Math.max(1, classLimit));
        int[] y = new int[count];
        for (int i = 0; i < count; i++) y[i] = classes == null || classes.isEmpty() ? i % cycle : classes.get(i % classes.size());
        for (int v : y) if (v < 0 || v >= m.numClasses()) throw new IllegalArgumentException("class label " + v + " outside [0, "
                + m.numClasses() + ")");
        return y;
    }

    /** One batch's request: images [from, from + n) with their labels. */
    public static SampleRequest request(DiffusionModel m, Settings s, int from, int n, int[] labels) {
        SampleRequest.Builder b = SampleRequest.forModel(m, n).sampler(Sampler.named(s.sampler(), s.eta())).respacing(s.respacing())
                .schedule(NoiseSchedule.named(s.schedule(), 1000)).seed(s.seed()).firstSampleIndex(from);
        if (labels != null) {
            b.labels(Arrays.copyOfRange(labels, from, from + n));
            if (s.cfg() != 1.0) b.cfg(s.cfg(), s.cfgMode());
        }
        return b.build();
    }

    /** {@link #sample(DiffusionModel, Settings, int, int[], Listener, UnaryOperator, BooleanSupplier)} without post-processing or cancellation. */
    public static Tensor sample(DiffusionModel m, Settings s, int count, int[] labels, Listener listener) {
        return sample(m, s, count, labels, listener, null, null);
    }

    /**
     * Samples count images [count, C, H, W].
     * @param labels    one per image (class-conditional models) or null
     * @param listener  called after every sampler step, or null
     * @param perBatch  applied to every finished batch (e.g. a VAE decode), or null
     * @param cancelled polled between steps; when it turns true a CancellationException is thrown; or null
     */
    public static Tensor sample(DiffusionModel m, Settings s, int count, int[] labels, Listener listener, UnaryOperator<Tensor> perBatch,
                                BooleanSupplier cancelled) {
        if (count < 1) throw new IllegalArgumentException("image count must be >= 1, got " + count);
        if (labels != null && labels.length != count) throw new IllegalArgumentException(labels.length + " labels for " + count + " images");
        if (labels == null && m.numClasses() > 0) throw new IllegalArgumentException("the " + m.architecture()
                + " is class-conditional (" + m.numClasses() + " classes): labels are needed");
        List<Tensor> parts = new ArrayList<>();
        for (int from = 0; from < count; from += s.batch()) {
            int n = Math.min(s.batch(), count - from);
            SamplingRun run = Sampling.start(request(m, s, from, n, labels));
            while (run.hasNext()) {
                if (cancelled != null && cancelled.getAsBoolean()) throw new java.util.concurrent.CancellationException("sampling cancelled");
                SamplingStep st = run.next();
                if (listener != null) listener.step(from, n, count, st);
            }
            parts.add(perBatch == null ? run.result() : perBatch.apply(run.result()));
        }
        return parts.size() == 1 ? parts.getFirst() : Tensor.concatRows(parts.toArray(new Tensor[0]));
    }
}
