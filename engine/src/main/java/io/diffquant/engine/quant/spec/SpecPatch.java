package io.diffquant.engine.quant.spec;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;

/**
 * A partial {@link TensorSpec} in a per-layer override: every field may be absent (null = keep). {@code enabled = false}
 * turns the tensor off (full precision); any other field (or {@code enabled = true}) turns it on, starting from the
 * layer's current spec, or from the config's defaults when the layer is currently off.
 */
public record SpecPatch(Boolean enabled, NumberFormat format, Granularity granularity, RangeSpec range, CalibrationMode mode) {

    /** Turns the tensor off. */
    public static final SpecPatch OFF = new SpecPatch(false, null, null, null, null);
    /** Changes nothing. */
    public static final SpecPatch KEEP = new SpecPatch(null, null, null, null, null);

    public SpecPatch {
        if (Boolean.FALSE.equals(enabled) && (format != null || granularity != null || range != null || mode != null))
            throw new IllegalArgumentException("a patch that disables quantization ('enabled': false) cannot also set format, granularity, range or mode");
    }

    public static SpecPatch of(TensorSpec s) {
        return s.enabled() ? new SpecPatch(null, s.format(), s.granularity(), s.range(), s.mode()) : OFF;
    }

    public boolean isKeep() { return enabled == null && format == null && granularity == null && range == null && mode == null; }
    public boolean isOff() { return Boolean.FALSE.equals(enabled); }

    /**
     * The spec after this patch.
     * @param current  the layer's spec so far
     * @param defaults the config's default spec for this role (the base when current is off)
     * @throws IllegalArgumentException when the patch enables a tensor without enough fields to do so
     */
    public TensorSpec apply(TensorSpec current, TensorSpec defaults) {
        if (isKeep()) return current;
        if (isOff()) return TensorSpec.OFF;
        TensorSpec base = current.enabled() ? current : defaults.enabled() ? defaults : null;
        NumberFormat f = format != null ? format : base == null ? null : base.format();
        Granularity g = granularity != null ? granularity : base == null ? null : base.granularity();
        RangeSpec r = range != null ? range : base == null ? RangeSpec.MINMAX : base.range();
        CalibrationMode m = mode != null ? mode : base == null ? CalibrationMode.STATIC : base.mode();
        if (f == null || g == null) throw new IllegalArgumentException("enables quantization of a tensor that is off (and off in the "
                + "defaults) without giving " + (f == null ? "format" + (g == null ? " and granularity" : "") : "granularity"));
        return new TensorSpec(true, f, g, r, m);
    }
}
