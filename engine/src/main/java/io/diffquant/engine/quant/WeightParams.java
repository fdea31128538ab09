package io.diffquant.engine.quant;

import io.diffquant.engine.quant.format.QuantParams;

import java.util.Arrays;

/**
 * Calibrated parameters of one quantized weight: per-group {@link QuantParams} (Q-Diffusion's delta / zero_point,
 * FP4DiT's maxval), and optionally the codes themselves (one per element, unsigned, row-major) when the rounding
 * was learned (AdaRound / BRECQ) rather than round-to-nearest. Without codes the weight is rounded to nearest with
 * the parameters.
 */
public record WeightParams(QuantParams params, byte[] codes) {
    public WeightParams {
        if (params == null) throw new IllegalArgumentException("weight parameters are null");
    }

    public static WeightParams rtn(QuantParams p) { return new WeightParams(p, null); }

    public boolean hasCodes() { return codes != null; }

    @Override public boolean equals(Object o) {
        return o instanceof WeightParams w && w.params.equals(params) && Arrays.equals(w.codes, codes);
    }

    @Override public int hashCode() { return params.hashCode() * 31 + Arrays.hashCode(codes); }

    @Override public String toString() { return "WeightParams[" + params + (codes == null ? "" : ", " + codes.length + " codes") + "]"; }
}
