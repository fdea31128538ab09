package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Tensor;

import java.util.Map;

/**
 * What a {@link TrainingRun} minimises: the loss of one mini-batch, built with recorded ops while the run's
 * {@link io.diffquant.engine.tensor.Tape} is active. All randomness must come from the given {@link TrainRng}
 * (which depends only on the run seed and the step), so that runs are reproducible and resumable.
 */
@FunctionalInterface
public interface Objective {
    StepLoss loss(Batch batch, TrainRng rng);

    /** A mini-batch: images [B, C, H, W] in [-1, 1], labels (null for unlabelled data) and dataset indices. */
    record Batch(Tensor images, int[] labels, int[] indices) {
        public int size() { return indices.length; }
    }

    /** The scalar loss to differentiate, and named values of its terms for progress reports. */
    record StepLoss(Tensor loss, Map<String, Double> terms) {
        public StepLoss {
            if (loss.size() != 1) throw new IllegalArgumentException("an objective must return a scalar loss, got " + loss);
            terms = Map.copyOf(terms);
        }

        public static StepLoss of(Tensor loss) { return new StepLoss(loss, Map.of()); }
    }
}
