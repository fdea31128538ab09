package io.diffquant.engine.quant.preset;

import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.NumberFormat;

/**
 * How presets turn "bits + family" into a number format: {@code int} gives INT-b asymmetric (Q-Diffusion's
 * UniformAffineQuantizer default), {@code fp} gives the FP4DiT ExMy split for b bits (weights and activations:
 * 8 -> E4M3, 7 -> E3M3, 6 -> E2M3, 5 -> E2M2, 4 -> E2M1, 3 -> E1M1, 2 -> E1M0); any other value is a format id
 * ({@link NumberFormat#parse}) and the bits are taken from it.
 */
public final class Formats {
    private Formats() {}

    /** The FP split of b bits. */
    public static FpFormat fp(int bits) {
        return switch (bits) {
            case 8 -> FpFormat.of(4, 3);
            case 7 -> FpFormat.of(3, 3);
            case 6 -> FpFormat.of(2, 3);
            case 5 -> FpFormat.of(2, 2);
            case 4 -> FpFormat.of(2, 1);
            case 3 -> FpFormat.of(1, 1);
            case 2 -> FpFormat.of(1, 0);
            default -> throw new IllegalArgumentException("FP formats here have 2 to 8 bits, got " + bits);
        };
    }

    /**
     * @param family "int", "fp" or a format id
     * @param option the option name, for messages
     */
    public static NumberFormat resolve(String family, int bits, String option) {
        try {
            return switch (family) {
                case "int" -> IntFormat.asymmetric(bits);
                case "fp" -> fp(bits);
                default -> NumberFormat.parse(family);
            };
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("option '" + option + "': " + e.getMessage(), e);
        }
    }

    /** Whether a format is an FP4DiT-style float (for choosing unsigned post-softmax formats). */
    public static boolean isFp(NumberFormat f) { return f instanceof FpFormat; }

    /** The format for post-softmax probabilities: unsigned variant of an FP format (FP4DiT), else unchanged. */
    public static NumberFormat forSoftmax(NumberFormat f) {
        return f instanceof FpFormat fp ? fp.toUnsigned() : f;
    }
}
