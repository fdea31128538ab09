package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

/**
 * Sees the inputs and the output of every block of a denoiser during a forward pass (a DiT block; a UNet ResNet or
 * attention block), e.g. to cache them for BRECQ block reconstruction (Li et al., ICLR 2021; Q-Diffusion's
 * save_inp_oup_data). A model names its blocks by their state_dict prefix, the {@code block} tag of their layers.
 * An observer must not modify the tensors; it may throw to end the forward pass early.
 */
public interface BlockObserver {
    /** The block's inputs, in the order the model's runBlock takes them. */
    default void input(String block, Tensor[] inputs, ForwardContext ctx) { }

    /** The block's output. */
    default void output(String block, Tensor output, ForwardContext ctx) { }
}
