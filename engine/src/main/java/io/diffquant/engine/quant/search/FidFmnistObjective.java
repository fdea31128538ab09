package io.diffquant.engine.quant.search;

import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.preset.ModelObjective;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The objective of Q-DiT's group-size search as the paper uses it (Chen et al., arXiv 2406.17343 §4.2: FID of
 * generated images), on the product's Fashion-MNIST models: FID-FMNIST ({@link FmnistMetrics}, the shipped classifier's
 * features against the test-set statistics) of a few hundred images sampled by the quantized model. Every evaluation
 * samples the same images (same seed, labels cycling 0..9, guidance for class-conditional models), so genomes are
 * compared on common noise; images are clamped to [-1, 1] as {@code diffquant eval} does. Lower is better.
 */
public final class FidFmnistObjective implements ModelObjective {
    /** The {@code search_objective} value that selects this objective. */
    public static final String NAME = "fid-fmnist";

    private final DiffusionModel model;
    private final FmnistMetrics metrics;
    private final int count;
    private final SampleBatches.Settings sampling;
    private final int[] labels;

    /**
     * @param count    images per evaluation (>= 2)
     * @param sampling how they are sampled (guidance applies to class-conditional models only)
     * @throws IllegalArgumentException for a model that does not make [N, 1, 28, 28] images
     */
    public FidFmnistObjective(DiffusionModel model, FmnistMetrics metrics, int count, SampleBatches.Settings sampling) {
        if (model.inChannels() != 1 || model.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(
                "search objective " + NAME + " measures Fashion-MNIST images [N, 1, 28, 28], but this " + model.architecture() + " makes [N, "
                        + model.inChannels() + ", " + model.sampleSize() + ", " + model.sampleSize() + "]; use search_objective = output-mse");
        if (count < 2) throw new IllegalArgumentException("search objective " + NAME + ": search_images must be >= 2 (FID needs a covariance), got "
                + count);
        this.model = model;
        this.metrics = metrics;
        this.count = count;
        this.sampling = model.numClasses() > 0 ? sampling : sampling.withCfg(1.0);
        this.labels = SampleBatches.labels(model, count, null, metrics.classifier().config().numClasses());
    }

    /**
     * The objective of a q-dit preset's options: {@code search_images} images, DDIM {@code search_steps} steps, guidance
     * {@code search_cfg}, noise seed {@code search_seed}, batches of {@code search_images} up to 64, with the shipped
     * classifier ({@link FmnistMetrics#loadDefault()}).
     */
    public static FidFmnistObjective fromOptions(DiffusionModel model, PresetOptions o) {
        FmnistMetrics m;
        try {
            m = FmnistMetrics.loadDefault();
        } catch (IOException e) {
            throw new UncheckedIOException("search objective " + NAME + ": " + e.getMessage(), e);
        }
        int n = o.getInt("search_images"), steps = o.getInt("search_steps");
        if (steps < 1) throw new IllegalArgumentException("option 'search_steps': expected >= 1, got " + steps);
        return new FidFmnistObjective(model, m, n, SampleBatches.Settings.ddim(steps, o.getDouble("search_cfg"), o.getInt("search_seed"),
                Math.max(1, Math.min(64, n))));
    }

    public int count() { return count; }
    public SampleBatches.Settings sampling() { return sampling; }

    /** The images the objective measures for the model in its current state (hooks attached or not), clamped to [-1, 1]. */
    public Tensor images() {
        Tensor x = SampleBatches.sample(model, sampling, count, labels, null);
        float[] d = x.data();
        for (int i = 0; i < d.length; i++) d[i] = d[i] > 1f ? 1f : d[i] < -1f ? -1f : d[i];
        return x;
    }

    /** FID-FMNIST of the model in its current state (the full-precision model when nothing is attached). */
    public double evaluateModel() {
        return metrics.fid(metrics.classifier().features(images()));
    }

    @Override public double evaluate(QuantizedModel quantized) {
        if (quantized.model() != model) throw new IllegalArgumentException("search objective " + NAME + ": the quantized model is not the model "
                + "this objective samples");
        return evaluateModel();
    }
}
