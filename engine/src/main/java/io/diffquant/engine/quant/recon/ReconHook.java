package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.tensor.Tensor;

/**
 * The hook a layer of the unit under reconstruction carries while the unit runs alone (Q-Diffusion's QuantModule with
 * an AdaRoundQuantizer in soft mode): the weight is the rounding variables' active weight ({@link AdaRoundWeight#active()})
 * or, for layers of the unit that are not optimised, their fixed quantized weight; the input is fake-quantized with a
 * straight-through gradient when activation quantization is on.
 */
final class ReconHook implements LayerHook {
    final String layer;
    final AdaRoundWeight rounding;      // null: not optimised
    final Tensor fixedWeight;           // null: the layer's own weight (FP or no weight)
    final SteActQuant act;              // null: input not quantized

    ReconHook(String layer, AdaRoundWeight rounding, Tensor fixedWeight, SteActQuant act) {
        this.layer = layer;
        this.rounding = rounding;
        this.fixedWeight = fixedWeight;
        this.act = act;
    }

    @Override public Tensor input(Layer l, Tensor x, ForwardContext ctx) {
        return act == null ? x : act.apply(x, ctx);
    }

    @Override public Tensor weight(Layer l, Tensor w, ForwardContext ctx) {
        if (rounding != null) return rounding.active();
        return fixedWeight != null ? fixedWeight : w;
    }
}
