package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

/**
 * A weightless, named activation point (identity unless hooked): attention q, k, v and post-softmax
 * probabilities, block outputs, the UNet skip concatenation. Quantizers attach to it like to any layer.
 */
public final class Probe extends Layer {
    public Probe(String name) { super(name); }

    @Override public LayerKind kind() { return LayerKind.ACTIVATION; }

    @Override protected Tensor compute(Tensor x, Tensor w, ForwardContext ctx) { return x; }
}
