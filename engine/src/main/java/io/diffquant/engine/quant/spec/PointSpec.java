package io.diffquant.engine.quant.spec;

/**
 * The quantization of one quant point (a Linear/Conv2d layer or an activation probe): its weight spec and its
 * input-activation spec (Q-Diffusion's QuantModule weight_quantizer / act_quantizer pair). Probes have no weight.
 */
public record PointSpec(TensorSpec weight, TensorSpec input) {
    /** Full precision. */
    public static final PointSpec FP = new PointSpec(TensorSpec.OFF, TensorSpec.OFF);

    public PointSpec {
        if (weight == null || input == null) throw new IllegalArgumentException("point spec needs weight and input specs (use TensorSpec.OFF)");
    }

    public boolean enabled() { return weight.enabled() || input.enabled(); }

    public TensorSpec get(TensorSpec.Role role) { return role == TensorSpec.Role.WEIGHT ? weight : input; }

    public PointSpec with(TensorSpec.Role role, TensorSpec s) {
        return role == TensorSpec.Role.WEIGHT ? new PointSpec(s, input) : new PointSpec(weight, s);
    }
}
