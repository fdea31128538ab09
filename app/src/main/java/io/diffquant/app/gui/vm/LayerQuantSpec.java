package io.diffquant.app.gui.vm;

import java.util.Objects;

/**
 * The quantization choices of one layer as the user sees them in the layer table: format, granularity and range names
 * as strings (the engine's {@code NumberFormat.parse}, {@code Granularity.parse}, {@code RangeSpec.parse} and
 * {@code CalibrationMode.parse} names, ALGORITHMS.md §3-4). {@link #FLOAT} ("fp32") means "keep this tensor in float32".
 * {@link SpecBridge} converts it to and from the engine's {@code PointSpec}.
 *
 * @param weightFormat          number format of the weight, or "fp32"
 * @param weightGranularity     granularity of the weight's parameters (tensor, channel, group128, block32 ...)
 * @param activationFormat      number format of the layer's input activation (or the probe's value), or "fp32"
 * @param activationGranularity granularity of the activation's parameters (tensor, token, channel ...)
 * @param enabled               false keeps the whole layer in float32 whatever the formats say
 * @param weightRange           range estimation of the weight (minmax, lp, lp-qdit, percentile99.9 ...)
 * @param activationRange       range estimation of the activation (minmax, ema, lp ...)
 * @param activationMode        how activation parameters are found: static, per_timestep (TFMQ's FSC) or dynamic
 */
public record LayerQuantSpec(String weightFormat, String weightGranularity, String activationFormat,
                             String activationGranularity, boolean enabled, String weightRange, String activationRange,
                             String activationMode) {
    /** The name of "no quantization". */
    public static final String FLOAT = "fp32";
    /** A layer as loaded: float32 weights and activations, per-channel weight / per-tensor static activation defaults. */
    public static final LayerQuantSpec DEFAULT = new LayerQuantSpec(FLOAT, "channel", FLOAT, "tensor", true);

    public LayerQuantSpec {
        Objects.requireNonNull(weightFormat, "weightFormat");
        Objects.requireNonNull(weightGranularity, "weightGranularity");
        Objects.requireNonNull(activationFormat, "activationFormat");
        Objects.requireNonNull(activationGranularity, "activationGranularity");
        if (weightRange == null || weightRange.isBlank()) weightRange = "minmax";
        if (activationRange == null || activationRange.isBlank()) activationRange = "minmax";
        if (activationMode == null || activationMode.isBlank()) activationMode = "static";
    }

    /** Formats and granularities with min-max ranges and static activations. */
    public LayerQuantSpec(String weightFormat, String weightGranularity, String activationFormat, String activationGranularity, boolean enabled) {
        this(weightFormat, weightGranularity, activationFormat, activationGranularity, enabled, "minmax", "minmax", "static");
    }

    public LayerQuantSpec withWeightFormat(String f) { return new LayerQuantSpec(f, weightGranularity, activationFormat, activationGranularity, enabled, weightRange, activationRange, activationMode); }
    public LayerQuantSpec withWeightGranularity(String g) { return new LayerQuantSpec(weightFormat, g, activationFormat, activationGranularity, enabled, weightRange, activationRange, activationMode); }
    public LayerQuantSpec withActivationFormat(String f) { return new LayerQuantSpec(weightFormat, weightGranularity, f, activationGranularity, enabled, weightRange, activationRange, activationMode); }
    public LayerQuantSpec withActivationGranularity(String g) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, g, enabled, weightRange, activationRange, activationMode); }
    public LayerQuantSpec withEnabled(boolean e) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, activationGranularity, e, weightRange, activationRange, activationMode); }
    public LayerQuantSpec withWeightRange(String r) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, activationGranularity, enabled, r, activationRange, activationMode); }
    public LayerQuantSpec withActivationRange(String r) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, activationGranularity, enabled, weightRange, r, activationMode); }
    public LayerQuantSpec withActivationMode(String m) { return new LayerQuantSpec(weightFormat, weightGranularity, activationFormat, activationGranularity, enabled, weightRange, activationRange, m); }

    /** Whether the weight is quantized (enabled and not float32). */
    public boolean quantizesWeight() { return enabled && !Formats.isFloat(weightFormat); }
    /** Whether the activation is quantized (enabled and not float32). */
    public boolean quantizesActivation() { return enabled && !Formats.isFloat(activationFormat); }

    /** "static · minmax", "dynamic", "per_timestep · lp" for the table's calibration column ("" when not quantized). */
    public String calibrationText() {
        if (!quantizesActivation()) return "";
        return "dynamic".equals(activationMode) ? "dynamic" : activationMode + " · " + activationRange;
    }
}
