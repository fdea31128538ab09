package io.diffquant.engine.diffusion;

/**
 * Fixed DDPM reverse-process variance for models without a learned sigma (ADM's ModelVarType FIXED_SMALL /
 * FIXED_LARGE, facebookresearch/DiT diffusion/gaussian_diffusion.py). Learned-sigma models always use LEARNED_RANGE.
 */
public enum VarianceType {
    /** σ² = β̃_t, the posterior variance (log clipped at index 0); diffusers' "fixed_small". */
    FIXED_SMALL,
    /** σ² = β_t (β̃_1 at index 0); ADM's/DiT's default when sigma is not learned. */
    FIXED_LARGE;

    /** Parses "fixedsmall"/"fixed_small"/"fixed-small" and the large counterparts. */
    public static VarianceType parse(String s) {
        if (s == null) throw new IllegalArgumentException("variance type is null; expected fixedsmall or fixedlarge");
        return switch (s.trim().toLowerCase(java.util.Locale.ROOT).replace("_", "").replace("-", "")) {
            case "fixedsmall" -> FIXED_SMALL;
            case "fixedlarge" -> FIXED_LARGE;
            default -> throw new IllegalArgumentException("unknown variance type '" + s + "'; expected fixedsmall or fixedlarge");
        };
    }
}
