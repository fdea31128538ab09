package io.diffquant.engine.quant;

import io.diffquant.engine.quant.format.QuantParams;

import java.util.List;

/**
 * Fixed parameters of one input-activation quantizer: one {@link QuantParams} per input part (two for a UNet skip
 * concatenation split as Q-Diffusion does, else one).
 */
public record ActivationParams(List<QuantParams> parts) {
    public ActivationParams {
        if (parts == null || parts.isEmpty()) throw new IllegalArgumentException("activation parameters need at least one part");
        for (QuantParams p : parts) if (p == null) throw new IllegalArgumentException("activation parameters: a part is null");
        parts = List.copyOf(parts);
    }

    public static ActivationParams of(QuantParams... parts) { return new ActivationParams(List.of(parts)); }

    public QuantParams part(int i) { return parts.get(i); }
    public int size() { return parts.size(); }
}
