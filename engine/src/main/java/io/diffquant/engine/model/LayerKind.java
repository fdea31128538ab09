package io.diffquant.engine.model;

/** What a named layer is; quantizers and analyses select by kind. */
public enum LayerKind {
    LINEAR, CONV2D, EMBEDDING, NORM,
    /** a weightless activation point (attention q/k/v, post-softmax probabilities, block outputs). */
    ACTIVATION
}
