package io.diffquant.engine.quant.spec;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;

/**
 * How one tensor of a quant point is quantized (ALGORITHMS.md §3-§4): number format, granularity, range estimation
 * and, for input activations, the calibration mode; or {@link #OFF} (kept in full precision). Immutable value.
 *
 * <p>Rules ({@link #validate(Role)}): weights are always static and cannot use an EMA range; static and per-timestep
 * activations need a granularity whose group count does not depend on the number of tokens (tensor, channel, head);
 * token, group and block granularities of activations are dynamic (computed online from every input). Block formats
 * (MX, NVFP4) need their block granularity.
 */
public record TensorSpec(boolean enabled, NumberFormat format, Granularity granularity, RangeSpec range, CalibrationMode mode) {

    /** Which tensor of a quant point a spec is for. */
    public enum Role {
        WEIGHT("weight"), INPUT("input");
        private final String id;
        Role(String id) { this.id = id; }
        public String id() { return id; }
    }

    /** Not quantized. */
    public static final TensorSpec OFF = new TensorSpec(false, null, null, null, null);

    public TensorSpec {
        if (enabled) {
            if (format == null || granularity == null || range == null || mode == null)
                throw new IllegalArgumentException("an enabled quantization spec needs format, granularity, range and mode");
        } else if (format != null || granularity != null || range != null || mode != null) {
            throw new IllegalArgumentException("a disabled quantization spec carries no format, granularity, range or mode");
        }
    }

    /** A weight spec (static). */
    public static TensorSpec weight(NumberFormat format, Granularity granularity, RangeSpec range) {
        return new TensorSpec(true, format, granularity, range, CalibrationMode.STATIC);
    }

    /** An input-activation spec. */
    public static TensorSpec input(NumberFormat format, Granularity granularity, RangeSpec range, CalibrationMode mode) {
        return new TensorSpec(true, format, granularity, range, mode);
    }

    public TensorSpec withFormat(NumberFormat f) { return new TensorSpec(true, f, granularity, range, mode); }
    public TensorSpec withGranularity(Granularity g) { return new TensorSpec(true, format, g, range, mode); }
    public TensorSpec withRange(RangeSpec r) { return new TensorSpec(true, format, granularity, r, mode); }
    public TensorSpec withMode(CalibrationMode m) { return new TensorSpec(true, format, granularity, range, m); }

    /** Whether the parameters are fixed after calibration (static or per timestep), as opposed to dynamic or off. */
    public boolean calibrated() { return enabled && mode != CalibrationMode.DYNAMIC; }

    /** Throws IllegalArgumentException naming the offending field if this spec cannot be used for the role. */
    public void validate(Role role) {
        if (!enabled) return;
        try {
            format.checkGranularity(granularity);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("granularity: " + e.getMessage(), e);
        }
        if (role == Role.WEIGHT) {
            if (mode != CalibrationMode.STATIC) throw new IllegalArgumentException("mode: weights are quantized once (static), got "
                    + mode.id());
            if (granularity instanceof Granularity.PerToken) throw new IllegalArgumentException(
                    "granularity: 'token' is for activations; weights use tensor, channel, group<g>, head<h> or block<b>");
            if (range.kind() == RangeSpec.Kind.EMA) throw new IllegalArgumentException(
                    "range: an EMA over calibration batches is for activations; weights use minmax, percentile or lp");
        } else {
            boolean perRows = granularity instanceof Granularity.PerToken || granularity instanceof Granularity.PerGroup
                    || granularity instanceof Granularity.PerBlock;
            if (perRows && mode != CalibrationMode.DYNAMIC) throw new IllegalArgumentException("mode: granularity "
                    + granularity.id() + " gives one parameter set per token, so it is computed online: use mode 'dynamic' (got '"
                    + mode.id() + "')");
            if (mode == CalibrationMode.DYNAMIC && range.kind() == RangeSpec.Kind.EMA) throw new IllegalArgumentException(
                    "range: dynamic quantization computes the range of every input; an EMA needs calibration (static or per_timestep)");
        }
    }

    /** Short description, e.g. {@code int4-asym/group128/minmax} or {@code int8-asym/tensor/lp2.4x80s0.01/static}; "off". */
    public String describe(Role role) {
        if (!enabled) return "off";
        String s = format.id() + "/" + granularity.id() + "/" + range.id();
        return role == Role.WEIGHT ? s : s + "/" + mode.id();
    }

    @Override public String toString() { return enabled ? format.id() + "/" + granularity.id() + "/" + range.id() + "/" + mode.id() : "off"; }
}
