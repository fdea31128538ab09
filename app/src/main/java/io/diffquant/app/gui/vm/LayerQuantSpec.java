package io.diffquant.app.gui.vm;

import java.util.Objects;

/**
 * The quantization choices of one layer as the user made them in the layer table: format and granularity names
 * as strings (ALGORITHMS.md §3-4 names: {@code NumberFormat.parse}, {@code Granularity.parse}), consumed later by the
 * quantization engine. {@link #FLOAT} ("fp32") means "keep this tensor in float32".
 *
 * @param weightFormat          number format of the weight, or "fp32"
 * @param weightGranularity     granularity of the weight's parameters (tensor, channel, group128, block32 ...)
 * @param activationFormat      number format of the layer's input activation (or the probe's value), or "fp32"
 * @param activationGranularity granularity of the activation's parameters (tensor, token, channel ...)
 * @param enabled               false keeps the whole layer in float32 whatever the formats say
 */
public record LayerQuantSpec(String weightFormat, String weightGranularity, String activationFormat,
                             String activationGranularity, boolean enabled) {
    /** The name of "no quantization". */
    public static final String FLOAT = "fp32";
    /** A layer as loaded: float32 weights and activations, per-channel weight / per-tensor activation defaults. */
    public static final LayerQuantSpec DEFAULT = new LayerQuantSpec(FLOAT, "channel", FLOAT, "tensor", true);

    public LayerQuantSpec {
        Objects.requireNonNull(weightFormat, "weightFormat");
        Objects.requireNonNull(weightGranularity, "weightGranularity");
        Objects.requireNonNull(activationFormat, "activationFormat");
        Objects.requireNonNull(activationGranularity, "activationGranularity");
    }

    public LayerQuantSpec withWeightFormat(String f) { return new LayerQuantSpec(f, weightGranularity, activationFormat, activationGranularity, enabled); }
    public LayerQuantSpec withWeightGranularity(String g) { return new LayerQuantSpec(weightFormat, g, activationFormat, activationGranularity, enabled); }
    public LayerQuantSpec withActivationFormat(String f) { return new LayerQuantSpec(weightFormat, weightGranularity, f, activationGranularity, enabled); }
    public LayerQuantSpec withActivationGranularity(String g) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, g, enabled); }
    public LayerQuantSpec withEnabled(boolean e) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, activationGranularity, e); }

    /** Whether the weight is quantized (enabled and not float32). */
    public boolean quantizesWeight() { return enabled && !Formats.isFloat(weightFormat); }
    /** Whether the activation is quantized (enabled and not float32). */
    public boolean quantizesActivation() { return enabled && !Formats.isFloat(activationFormat); }
}
