/**
 * Temporal feature maintenance of TFMQ-DM (Huang et al., "TFMQ-DM: Temporal Feature Maintenance Quantization for
 * Diffusion Models", CVPR 2024, and the TPAMI version "Temporal Feature Matters: A Framework for Diffusion Model
 * Quantization", arXiv 2407.19547; ALGORITHMS.md §6).
 *
 * <p>Stable API (other packages build analyses on it):
 * <ul>
 *   <li>{@link io.diffquant.engine.temporal.TemporalInfoBlock#of} finds the Temporal Information Block of a DiT or
 *       UNet2DModel: its layers and its temporal features e_i(t[, y]) (name, producing layer, width, label
 *       dependence, chunks) and the label set.</li>
 *   <li>{@link io.diffquant.engine.temporal.TemporalFeatures#compute} tabulates every feature for given timestep
 *       values and labels by running only the TIB (dense [feature][t][y] -> float[]); the same call through a quantized
 *       model's hooks ({@link io.diffquant.engine.temporal.TemporalFeatures#computeQuantized}) gives ê_i(t, y);
 *       {@link io.diffquant.engine.temporal.TemporalFeatures#run} runs the TIB on one batch (tape-recordable).</li>
 *   <li>{@link io.diffquant.engine.temporal.TemporalErrors#compare} gives relative L2, MSE and cosine per feature,
 *       timestep and label.</li>
 * </ul>
 * The methods: {@link io.diffquant.engine.temporal.Tiar} (TIAR), {@link io.diffquant.engine.temporal.FscCalibrator}
 * (FSC), {@link io.diffquant.engine.temporal.FeatureCache} and {@link io.diffquant.engine.temporal.TemporalCacheHooks}
 * (cache-based maintenance), {@link io.diffquant.engine.temporal.DisturbanceSelection} (DS); the presets
 * {@code tfmq}, {@code tfmq-cache}, {@code tfmq-ds} ({@code io.diffquant.engine.quant.preset.TfmqPreset}) run them through
 * {@link io.diffquant.engine.temporal.TemporalReconstruction} and {@link io.diffquant.engine.temporal.TfmqStage}, and
 * {@link io.diffquant.engine.temporal.TemporalRuntime} applies a config's temporal section at inference.
 */
package io.diffquant.engine.temporal;
