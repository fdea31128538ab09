package io.diffquant.engine.quant.spec;

/**
 * A per-layer override of a quantization config: layers whose state_dict prefix matches {@code pattern} get the
 * weight and input patches applied. The pattern is a glob ({@code *} any run of characters including dots, {@code ?}
 * one character) matched against the whole layer name or against a dotted prefix of it ({@code blocks.0} covers
 * {@code blocks.0.attn.qkv}). Overrides apply in order; later entries win.
 *
 * @param origin where the override came from, for error messages (a JSON path such as {@code $.overrides[2]},
 *               or {@code --override #1}); not part of the value's identity in configs
 */
public record LayerOverride(String pattern, SpecPatch weight, SpecPatch input, String origin) {
    public LayerOverride {
        if (pattern == null || pattern.isBlank()) throw new IllegalArgumentException("override pattern is empty");
        if (weight == null) weight = SpecPatch.KEEP;
        if (input == null) input = SpecPatch.KEEP;
        if (origin == null) origin = "override '" + pattern + "'";
    }

    public LayerOverride(String pattern, SpecPatch weight, SpecPatch input) { this(pattern, weight, input, null); }

    /** Turns a layer (weight and input) to full precision. */
    public static LayerOverride fullPrecision(String pattern) { return new LayerOverride(pattern, SpecPatch.OFF, SpecPatch.OFF); }

    public SpecPatch get(TensorSpec.Role role) { return role == TensorSpec.Role.WEIGHT ? weight : input; }

    public LayerOverride withOrigin(String o) { return new LayerOverride(pattern, weight, input, o); }

    /** Equality ignores the origin. */
    @Override public boolean equals(Object o) {
        return o instanceof LayerOverride l && l.pattern.equals(pattern) && l.weight.equals(weight) && l.input.equals(input);
    }

    @Override public int hashCode() { return java.util.Objects.hash(pattern, weight, input); }
}
