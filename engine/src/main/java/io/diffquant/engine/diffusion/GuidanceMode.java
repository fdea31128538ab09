package io.diffquant.engine.diffusion;

/**
 * Which eps channels classifier-free guidance combines (ALGORITHMS.md §1; facebookresearch/DiT models.py
 * {@code forward_with_cfg}).
 */
public enum GuidanceMode {
    /** Standard CFG on every eps channel (the first C output channels). The default. */
    ALL_CHANNELS,
    /** The official DiT code: guidance on the first 3 channels only, the other eps channels from the cond half. */
    DIT_COMPATIBLE
}
