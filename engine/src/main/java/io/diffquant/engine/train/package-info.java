/**
 * Training of the product's own models (the shipped Fashion-MNIST DiT and UNet, the metric classifier), with
 * hand-written backward passes recorded by {@link io.diffquant.engine.tensor.Tape}.
 *
 * <ul>
 *   <li>{@link io.diffquant.engine.train.TrainingRun}: the model-agnostic loop (batch, loss under a tape, backward,
 *       {@link io.diffquant.engine.train.AdamW}, {@link io.diffquant.engine.train.Ema}); pull one step with
 *       {@code next()} or loop with {@code run(listener, cancelled)} under a step limit and wall-clock budget,
 *       checkpointing on a timer into one atomically written {@link io.diffquant.engine.train.TrainCheckpoint}.</li>
 *   <li>{@link io.diffquant.engine.train.Objective}: what is minimised; {@link io.diffquant.engine.train.DiffusionObjective}
 *       is DiT/ADM's epsilon MSE (+ learned-variance VLB, label dropout for CFG); a classifier's objective is
 *       {@code (batch, rng) -> StepLoss.of(Ops.crossEntropy(model(batch.images()), batch.labels()))}.</li>
 *   <li>Determinism: every draw of step s comes from {@link io.diffquant.engine.train.TrainRng#derive}(seed, purpose, s)
 *       and the data order from (seed, epoch); reductions in the backward rules run in a fixed order. Same seed,
 *       data, code and thread count give bitwise identical weights, with or without a checkpoint/resume.</li>
 * </ul>
 */
package io.diffquant.engine.train;
