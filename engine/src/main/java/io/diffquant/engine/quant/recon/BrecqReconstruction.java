package io.diffquant.engine.quant.recon;

import io.diffquant.engine.quant.preset.Reconstruction;

/**
 * Rounding by reconstruction as a {@link Reconstruction} a preset selects by name (ALGORITHMS.md §5):
 * <ul>
 *   <li>{@code brecq}: BRECQ block reconstruction (Li et al., ICLR 2021) as Q-Diffusion runs it (Xiuyu-Li/q-diffusion
 *       recon_model): the rounding variables of all quantized layers of a block (DiT {@code blocks.N}; UNet ResNet and
 *       attention blocks) are optimised together against the full-precision block output, given the block input of the
 *       quantized model (upstream units already reconstructed); layers outside blocks are reconstructed one by one.</li>
 *   <li>{@code adaround}: AdaRound layer by layer (Nagel et al., ICML 2020): every quantized layer against its own
 *       full-precision output.</li>
 * </ul>
 * Integer weights use AdaRound's rounding, ExMy weights FP4DiT's scale-aware FP AdaRound ({@link AdaRoundWeight}).
 * Settings come from the preset options ({@link ReconSettings#options}); see {@link ReconRun} for the steps.
 */
public final class BrecqReconstruction implements Reconstruction {
    /** Block reconstruction (layers outside blocks: layer reconstruction). */
    public static final BrecqReconstruction BRECQ = new BrecqReconstruction("brecq", true);
    /** Layer-by-layer reconstruction. */
    public static final BrecqReconstruction ADAROUND = new BrecqReconstruction("adaround", false);

    private final String name;
    private final boolean blocks;

    private BrecqReconstruction(String name, boolean blocks) {
        this.name = name;
        this.blocks = blocks;
    }

    @Override public String name() { return name; }

    /** Whether blocks are reconstructed as units (else every layer alone). */
    public boolean blockwise() { return blocks; }

    @Override public ReconRun start(Context context) { return start(context, ReconSettings.from(context.options())); }

    /** Starts with explicit settings (the preset options are ignored). */
    public ReconRun start(Context context, ReconSettings settings) { return new ReconRun(context, settings, blocks, name); }

    @Override public String toString() { return name; }
}
