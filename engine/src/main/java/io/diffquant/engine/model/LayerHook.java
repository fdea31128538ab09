package io.diffquant.engine.model;

import io.diffquant.engine.tensor.Tensor;

/**
 * Observe or replace a layer's input, weight and output. Quantization, calibration and analyses attach
 * here; model code never knows about them. Every method may return its argument unchanged.
 * Hooks run in registration order; a hook must not modify the tensors it is given in place.
 */
public interface LayerHook {
    /** Sees (and may replace) the layer's input. */
    default Tensor input(Layer layer, Tensor x, ForwardContext ctx) { return x; }

    /** Sees (and may replace) the weight used by this call (fake quantization replaces it here). */
    default Tensor weight(Layer layer, Tensor w, ForwardContext ctx) { return w; }

    /** Returns a full replacement of the layer's computation, or null to let the layer compute. */
    default Tensor replace(Layer layer, Tensor x, ForwardContext ctx) { return null; }

    /** Sees (and may replace) the layer's output. */
    default Tensor output(Layer layer, Tensor y, ForwardContext ctx) { return y; }
}
