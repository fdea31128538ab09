package io.diffquant.engine.analysis;

import io.diffquant.engine.diffusion.SamplingResult;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.temporal.TemporalFeatures;
import io.diffquant.engine.temporal.TemporalInfoBlock;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The full-precision side of every analysis, computed once and cached (so that re-evaluating a toggled configuration
 * only computes the quantized side): the FP temporal feature table over all sampling timesteps and labels, the FP
 * denoising trajectory from the settings' seed, the model inputs x_t of every step and the FP model outputs there.
 * Quantities of a {@link Variant} are computed with the variant applied and never cached.
 *
 * <p>The FP quantities assume the model's weights do not change; call {@link #invalidate()} if they do. Not thread-safe:
 * one analysis at a time (the model's hooks are shared state).
 */
public final class AnalysisSession {
    private final DiffusionModel model;
    private final AnalysisSettings settings;
    private TemporalInfoBlock tib;
    private final int[] timesteps;
    private final int[] featureLabels;
    private final AtomicLong denoiserCalls = new AtomicLong(), featureTables = new AtomicLong();
    private TemporalFeatures fpFeatures;
    private Trajectory fpTrajectory;
    private List<Tensor> fpOutputs;
    private final java.util.Map<Integer, Tensor> fpSamples = new java.util.HashMap<>();
    private final java.util.Map<String, Object> derived = new java.util.HashMap<>();

    /**
     * A denoising trajectory: the initial noise, x after every step (all samples, sampling order) and the labels.
     * @param timesteps ORIGINAL timestep value of each step (descending)
     * @param states    x after step k, [samples, C, H, W]; the last is the final sample
     * @param labels    labels of the samples, or null
     */
    public record Trajectory(Tensor initialNoise, int[] timesteps, List<Tensor> states, int[] labels) {
        public Trajectory {
            timesteps = timesteps.clone();
            states = List.copyOf(states);
            labels = labels == null ? null : labels.clone();
        }

        @Override public int[] timesteps() { return timesteps.clone(); }
        @Override public int[] labels() { return labels == null ? null : labels.clone(); }

        /** The model input at step k: x_T for k = 0, else x after step k - 1. */
        public Tensor input(int k) { return k == 0 ? initialNoise : states.get(k - 1); }

        /** The final samples. */
        public Tensor samples() { return states.getLast(); }

        public int steps() { return timesteps.length; }
    }

    /**
     * A session over a model. The Temporal Information Block is found on first use of a temporal analysis (trajectory,
     * layer sensitivity and histograms work on any denoiser).
     */
    public AnalysisSession(DiffusionModel model, AnalysisSettings settings) {
        if (model == null) throw new IllegalArgumentException("analysis session: model is null");
        this.model = model;
        this.settings = settings == null ? AnalysisSettings.DEFAULT : settings;
        this.timesteps = this.settings.timesteps();
        this.featureLabels = featureLabels(model, this.settings);
    }

    /**
     * Labels of the feature table: the labels sampling uses (every class, plus the null class when guidance is on); null
     * when unconditional.
     */
    static int[] featureLabels(DiffusionModel model, AnalysisSettings s) {
        int c = model.numClasses();
        if (c <= 0) return null;
        int n = s.cfgScale() != 1.0 ? c + 1 : c;
        int[] y = new int[n];
        for (int i = 0; i < n; i++) y[i] = i;
        return y;
    }

    public DiffusionModel model() { return model; }
    public AnalysisSettings settings() { return settings; }
    /** The model's Temporal Information Block (found on first use). */
    public TemporalInfoBlock tib() {
        if (tib == null) tib = TemporalInfoBlock.of(model);
        return tib;
    }
    /** Sampling timesteps (original values) in sampling order. */
    public int[] timesteps() { return timesteps.clone(); }
    /** The labels of the temporal feature tables (null for unconditional models). */
    public int[] featureLabels() { return featureLabels == null ? null : featureLabels.clone(); }

    /** Denoiser calls this session made (FP and variants), for cache checks. */
    public long denoiserCalls() { return denoiserCalls.get(); }
    /** Temporal feature tables this session computed (FP and variants). */
    public long featureTablesComputed() { return featureTables.get(); }

    /** Drops every cached FP quantity (after the model's weights changed). */
    public void invalidate() {
        fpFeatures = null;
        fpTrajectory = null;
        fpOutputs = null;
        fpSamples.clear();
        derived.clear();
    }

    /** A derived FP quantity cached under a key (e.g. activation histogram counts), computed on first use. */
    @SuppressWarnings("unchecked")
    <T> T cached(String key, java.util.function.Supplier<T> compute) {
        Object v = derived.get(key);
        if (v == null) {
            v = compute.get();
            derived.put(key, v);
        }
        return (T) v;
    }

    // ------------------------------------------------------------------ temporal features

    /** The full-precision feature table (computed on first use). */
    public FeatureTable fpFeatures() { return FeatureTable.of(fpTemporalFeatures()); }

    /** The full-precision {@link TemporalFeatures} (computed on first use). */
    public TemporalFeatures fpTemporalFeatures() {
        if (fpFeatures == null) fpFeatures = computeFeatures();
        return fpFeatures;
    }

    /** The feature table with a variant applied (ê_i). */
    public FeatureTable features(Variant v) { return FeatureTable.of(temporalFeatures(v)); }

    /**
     * The {@link TemporalFeatures} with a variant applied (ê_i): only its Temporal Information Block part is applied
     * ({@link Variant#applyTo}), the rest of the network does not affect the features.
     */
    public TemporalFeatures temporalFeatures(Variant v) {
        try (Variant.Applied a = v.applyTo(model, new java.util.HashSet<>(tib().layers()))) {
            return computeFeatures();
        }
    }

    private TemporalFeatures computeFeatures() {
        featureTables.incrementAndGet();
        float[] ts = new float[timesteps.length];
        for (int i = 0; i < ts.length; i++) ts[i] = timesteps[i];
        return TemporalFeatures.compute(model, tib(), ts, featureLabels);
    }

    // ------------------------------------------------------------------ trajectories

    /** The full-precision trajectory of {@link AnalysisSettings#samples()} samples (computed on first use). */
    public Trajectory fpTrajectory() {
        if (fpTrajectory == null) fpTrajectory = sample(model);
        return fpTrajectory;
    }

    /** The trajectory with a variant applied, from the same noise. */
    public Trajectory trajectory(Variant v) {
        try (Variant.Applied a = v.apply(model)) {
            return sample(model);
        }
    }

    /** Samples the settings' trajectory with a denoiser (the model, possibly wrapped, e.g. perturbed). */
    public Trajectory sample(Denoiser denoiser) { return sample(denoiser, settings.samples()); }

    /** Samples {@code count} samples from the settings' seed with a denoiser, keeping x after every step. */
    public Trajectory sample(Denoiser denoiser, int count) {
        Denoiser counted = (x, t, y) -> {
            denoiserCalls.incrementAndGet();
            return denoiser.forward(x, t, y);
        };
        List<Tensor> noise = new ArrayList<>();
        List<List<Tensor>> states = new ArrayList<>();
        int[] ts = null;
        for (int from = 0; from < count; from += settings.batch()) {
            int n = Math.min(settings.batch(), count - from);
            SamplingResult r = Sampling.runToEnd(settings.request(model, counted, from, n), true);
            noise.add(r.initialNoise());
            ts = r.timesteps();
            for (int k = 0; k < r.trajectory().size(); k++) {
                if (states.size() <= k) states.add(new ArrayList<>());
                states.get(k).add(r.trajectory().get(k));
            }
        }
        List<Tensor> merged = new ArrayList<>();
        for (List<Tensor> s : states) merged.add(concat(s));
        return new Trajectory(concat(noise), ts, merged, AnalysisSettings.sampleLabels(model, 0, count));
    }

    /** The final FP samples of {@code count} samples from the settings' seed (cached per count). */
    public Tensor fpSamples(int count) {
        if (fpTrajectory != null && fpTrajectory.samples().dim(0) == count) return fpTrajectory.samples();
        return fpSamples.computeIfAbsent(count, n -> sampleFinal(model, n));
    }

    /** The final samples of {@code count} samples from the settings' seed (no trajectory kept). */
    public Tensor sampleFinal(Denoiser denoiser, int count) {
        if (count < 1) throw new IllegalArgumentException("analysis: sample count must be >= 1, got " + count);
        Denoiser counted = (x, t, y) -> {
            denoiserCalls.incrementAndGet();
            return denoiser.forward(x, t, y);
        };
        List<Tensor> parts = new ArrayList<>();
        for (int from = 0; from < count; from += settings.batch()) {
            int n = Math.min(settings.batch(), count - from);
            parts.add(Sampling.runToEnd(settings.request(model, counted, from, n), false).samples());
        }
        return concat(parts);
    }

    private static Tensor concat(List<Tensor> parts) {
        return parts.size() == 1 ? parts.getFirst() : Tensor.concatRows(parts.toArray(new Tensor[0]));
    }

    // ------------------------------------------------------------------ model inputs and outputs along the FP trajectory

    /** The model inputs of every sampling step of the FP trajectory, one batch per step (the timestep value as key). */
    public List<CalibBatch> stepInputs() {
        Trajectory tr = fpTrajectory();
        List<CalibBatch> out = new ArrayList<>();
        int n = tr.input(0).dim(0);
        int[] rows = new int[n];
        for (int i = 0; i < n; i++) rows[i] = i;
        for (int k = 0; k < tr.steps(); k++) out.add(new CalibBatch(tr.timesteps[k], tr.input(k), tr.labels(), rows));
        return Collections.unmodifiableList(out);
    }

    /** The FP model output at every step input (computed on first use). */
    public List<Tensor> fpOutputs() {
        if (fpOutputs == null) fpOutputs = outputs();
        return fpOutputs;
    }

    /** The model output at every FP step input with a variant applied. */
    public List<Tensor> outputs(Variant v) {
        try (Variant.Applied a = v.apply(model)) {
            return outputs();
        }
    }

    /** The model output at every FP step input, with whatever is attached now. */
    public List<Tensor> outputs() {
        List<Tensor> out = new ArrayList<>();
        for (CalibBatch b : stepInputs()) out.add(forward(b));
        return Collections.unmodifiableList(out);
    }

    /** One model call on a step batch, in chunks of the settings' batch size. */
    Tensor forward(CalibBatch b) {
        int n = b.size(), bs = settings.batch();
        List<Tensor> parts = new ArrayList<>();
        for (int from = 0; from < n; from += bs) {
            int to = Math.min(n, from + bs);
            float[] t = new float[to - from];
            Arrays.fill(t, b.t());
            int[] y = b.y() == null ? null : Arrays.copyOfRange(b.y(), from, to);
            Tensor x = from == 0 && to == n ? b.x() : b.x().sliceRows(from, to);
            denoiserCalls.incrementAndGet();
            parts.add(model.forward(x, t, y));
        }
        return concat(parts);
    }
}
