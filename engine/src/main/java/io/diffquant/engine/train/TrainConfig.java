package io.diffquant.engine.train;

import java.nio.file.Path;
import java.time.Duration;

/**
 * How a {@link TrainingRun} runs. Given the same seed, batch size, data, model initialisation and thread count,
 * a run is bitwise reproducible, also across checkpoint/resume.
 *
 * @param seed                 seeds the data order and every per-step draw (timesteps, noise, label dropout)
 * @param batchSize            images per step
 * @param maxSteps             stop after this many optimizer steps in total (0 = no limit)
 * @param wallClockBudget      stop a {@link TrainingRun#run} call after this much wall time (null = none)
 * @param checkpointEvery      write the checkpoint file at least this often during {@link TrainingRun#run} (null = only at the end)
 * @param checkpointFile       where checkpoints go (null = never written automatically)
 * @param adam                 optimizer settings
 * @param ema                  EMA settings (null = no EMA)
 * @param lrWarmupSteps        linear learning-rate warm-up over this many steps (0 = none)
 * @param maxGradNorm          clip the global gradient norm to this (0 = no clipping)
 * @param requireAllGradients  fail when a trainable tensor receives no gradient (an op on its path is not recorded)
 */
public record TrainConfig(long seed, int batchSize, long maxSteps, Duration wallClockBudget, Duration checkpointEvery,
                          Path checkpointFile, AdamW.Config adam, Ema.Config ema, long lrWarmupSteps, double maxGradNorm,
                          boolean requireAllGradients) {
    public TrainConfig {
        if (batchSize < 1) throw new IllegalArgumentException("train.batchSize must be >= 1, got " + batchSize);
        if (maxSteps < 0) throw new IllegalArgumentException("train.maxSteps must be >= 0, got " + maxSteps);
        if (wallClockBudget != null && wallClockBudget.isNegative()) throw new IllegalArgumentException("train.wallClockBudget must not be negative");
        if (checkpointEvery != null && (checkpointEvery.isNegative() || checkpointEvery.isZero()))
            throw new IllegalArgumentException("train.checkpointEvery must be positive");
        if (adam == null) throw new IllegalArgumentException("train.adam must be given");
        if (lrWarmupSteps < 0) throw new IllegalArgumentException("train.lrWarmupSteps must be >= 0, got " + lrWarmupSteps);
        if (!(maxGradNorm >= 0)) throw new IllegalArgumentException("train.maxGradNorm must be >= 0, got " + maxGradNorm);
    }

    /** DiT's recipe (AdamW 1e-4, no weight decay, EMA 0.9999 with warm-up), no limits, no checkpoints. */
    public static TrainConfig defaults(long seed, int batchSize) {
        return new TrainConfig(seed, batchSize, 0, null, null, null, AdamW.Config.dit(), new Ema.Config(0.9999, true), 0, 0, true);
    }

    public TrainConfig withMaxSteps(long v) { return new TrainConfig(seed, batchSize, v, wallClockBudget, checkpointEvery, checkpointFile, adam, ema, lrWarmupSteps, maxGradNorm, requireAllGradients); }
    public TrainConfig withWallClockBudget(Duration v) { return new TrainConfig(seed, batchSize, maxSteps, v, checkpointEvery, checkpointFile, adam, ema, lrWarmupSteps, maxGradNorm, requireAllGradients); }
    public TrainConfig withCheckpoints(Path file, Duration every) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, every, file, adam, ema, lrWarmupSteps, maxGradNorm, requireAllGradients); }
    public TrainConfig withAdam(AdamW.Config v) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, checkpointEvery, checkpointFile, v, ema, lrWarmupSteps, maxGradNorm, requireAllGradients); }
    public TrainConfig withEma(Ema.Config v) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, checkpointEvery, checkpointFile, adam, v, lrWarmupSteps, maxGradNorm, requireAllGradients); }
    public TrainConfig withLrWarmupSteps(long v) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, checkpointEvery, checkpointFile, adam, ema, v, maxGradNorm, requireAllGradients); }
    public TrainConfig withMaxGradNorm(double v) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, checkpointEvery, checkpointFile, adam, ema, lrWarmupSteps, v, requireAllGradients); }
    public TrainConfig withRequireAllGradients(boolean v) { return new TrainConfig(seed, batchSize, maxSteps, wallClockBudget, checkpointEvery, checkpointFile, adam, ema, lrWarmupSteps, maxGradNorm, v); }
}
