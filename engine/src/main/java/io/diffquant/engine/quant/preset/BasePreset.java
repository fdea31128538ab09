package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.recon.ReconSettings;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.SpecPatch;

import java.util.ArrayList;
import java.util.List;

/** Options and helpers shared by the built-in presets. */
abstract class BasePreset implements Preset {
    static final String W_BITS = "w_bits", A_BITS = "a_bits", W_FORMAT = "w_format", A_FORMAT = "a_format",
            ATTENTION = "quantize_attention", RECONSTRUCTION = "reconstruction";
    static final List<String> PROBE_PATTERNS = List.of("*.q", "*.k", "*.v", "*.softmax");

    static List<OptionDef> common(int wBits, int aBits, String family, boolean attention) {
        List<OptionDef> o = new ArrayList<>();
        o.add(OptionDef.integer(W_BITS, wBits, "weight bits (2..8)"));
        o.add(OptionDef.integer(A_BITS, aBits, "activation bits (2..8)"));
        o.add(OptionDef.string(W_FORMAT, family, "weight format family: int (INT-b asymmetric), fp (FP4DiT ExMy: 4 bits E2M1, 6 E2M3, 8 E4M3) or a format id such as int4-sym, fp4-e1m2, mxfp4"));
        o.add(OptionDef.string(A_FORMAT, family, "activation format family: int, fp or a format id such as fp6-e3m2"));
        o.add(OptionDef.bool(ATTENTION, attention, "quantize the attention probes (q, k, v inputs of the matmuls and the post-softmax probabilities)"));
        return o;
    }

    /**
     * The {@code reconstruction} option (default {@code def}) and the reconstruction settings' options
     * ({@link ReconSettings#options}: iterations, batch, learning rate, regulariser, memory budget, ...).
     */
    static List<OptionDef> reconstructionOptions(String def, int iterations, int batch) {
        List<OptionDef> o = new ArrayList<>();
        o.add(OptionDef.string(RECONSTRUCTION, def, "weight rounding by reconstruction, by name: " + String.join(", ", Reconstructions.names())
                + " (brecq: BRECQ block reconstruction with AdaRound, FP4DiT's scale-aware FP AdaRound for FP weights; adaround: layer by layer; none: round to nearest)"));
        o.addAll(ReconSettings.options(iterations, batch));
        return o;
    }

    static int bits(PresetOptions o, String name) {
        int b = o.getInt(name);
        if (b < 2 || b > 8) throw new IllegalArgumentException("option '" + name + "': expected 2..8 bits, got " + b);
        return b;
    }

    static NumberFormat weightFormat(PresetOptions o) { return Formats.resolve(o.getString(W_FORMAT), bits(o, W_BITS), W_FORMAT); }
    static NumberFormat inputFormat(PresetOptions o) { return Formats.resolve(o.getString(A_FORMAT), bits(o, A_BITS), A_FORMAT); }

    /** A block format's own granularity (MX: block32, NVFP4: block16), else the preset's. */
    static Granularity granularityFor(NumberFormat f, Granularity preset) {
        return f instanceof BlockFormat b ? b.granularity() : preset;
    }

    /** Block-format activations have one scale per block of a token: computed online. */
    static CalibrationMode modeFor(NumberFormat f, CalibrationMode preset) {
        return f instanceof BlockFormat ? CalibrationMode.DYNAMIC : preset;
    }

    /** An input spec with the block-format adjustments. */
    static TensorSpec input(NumberFormat f, Granularity g, RangeSpec r, CalibrationMode m) {
        return TensorSpec.input(f, granularityFor(f, g), f instanceof BlockFormat ? RangeSpec.MINMAX : r, modeFor(f, m));
    }

    /** A weight spec with the block-format adjustment. */
    static TensorSpec weight(NumberFormat f, Granularity g, RangeSpec r) {
        return TensorSpec.weight(f, granularityFor(f, g), f instanceof BlockFormat ? RangeSpec.MINMAX : r);
    }

    static boolean isDiT(DiffusionModel m) { return "DiT".equals(m.architecture()); }

    /** Whether a pattern selects at least one quant point of the model. */
    static boolean matchesAny(List<QuantPoint> points, String pattern) {
        for (QuantPoint p : points) if (QuantPlan.matches(pattern, p.name())) return true;
        return false;
    }

    /** Adds an override only when its pattern matches (presets never produce overrides that fail on a model). */
    static void add(List<LayerOverride> out, List<QuantPoint> points, String pattern, SpecPatch w, SpecPatch in, String why) {
        if (matchesAny(points, pattern)) out.add(new LayerOverride(pattern, w, in, name(why)));
    }

    static void fullPrecision(List<LayerOverride> out, List<QuantPoint> points, String pattern, String why) {
        add(out, points, pattern, SpecPatch.OFF, SpecPatch.OFF, why);
    }

    private static String name(String why) { return "preset: " + why; }

    @Override public Reconstruction reconstruction(PresetOptions options) {
        return options.has(RECONSTRUCTION) ? Reconstructions.byName(options.getString(RECONSTRUCTION)) : Reconstruction.NONE;
    }

    @Override public String toString() { return name(); }
}
