package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Format and granularity names offered by the layer table, parsed with the engine's
 * {@link NumberFormat#parse(String)} / {@link Granularity#parse(String)} (ALGORITHMS.md §3-4), plus the bit arithmetic
 * the table shows (ALGORITHMS.md §3: average bits = (code bits x elements + parameter bits) / elements).
 */
public final class Formats {
    private static final Map<String, NumberFormat> CACHE = new ConcurrentHashMap<>();
    private static final List<String> FORMAT_CHOICES;
    static {
        List<String> l = new ArrayList<>();
        l.add(LayerQuantSpec.FLOAT);
        l.addAll(NumberFormat.allNames());
        FORMAT_CHOICES = Collections.unmodifiableList(l);
    }
    /** Common granularities for weights (Q-DiT groups, OCP MX / NVFP4 blocks). */
    public static final List<String> WEIGHT_GRANULARITIES = List.of("tensor", "channel", "group32", "group64", "group128",
            "block16", "block32");
    /** Common granularities for activations (per token is computed online). */
    public static final List<String> ACTIVATION_GRANULARITIES = List.of("tensor", "token", "channel", "group32", "group64", "group128", "block16", "block32");

    private Formats() {}

    /** "fp32" followed by every name {@link NumberFormat#parse(String)} accepts. */
    public static List<String> formatChoices() { return FORMAT_CHOICES; }

    /** Human-readable list of the accepted format names (for prompts and error messages). */
    public static String validNames() { return LayerQuantSpec.FLOAT + " (no quantization), " + NumberFormat.validNames(); }

    public static boolean isFloat(String name) {
        return name == null || name.isBlank() || name.trim().equalsIgnoreCase(LayerQuantSpec.FLOAT);
    }

    /** The canonical spelling of a format name ("fp32" for float); throws naming the valid names if unknown. */
    public static String canonical(String name) {
        if (isFloat(name)) return LayerQuantSpec.FLOAT;
        return format(name).id();
    }

    /** Parses (and caches) a quantized format name. */
    public static NumberFormat format(String name) {
        if (isFloat(name)) throw new IllegalArgumentException("'" + name + "' is not a quantized format");
        String key = name.trim().toLowerCase(Locale.ROOT);
        NumberFormat f = CACHE.get(key);
        if (f == null) {
            f = NumberFormat.parse(key);   // throws with the list of valid names
            CACHE.put(key, f);
        }
        return f;
    }

    /** Code bits of a format name (32 for float). */
    public static int codeBits(String name) { return isFloat(name) ? 32 : format(name).codeBits(); }

    /** Canonical granularity name; throws with the valid names if unknown. */
    public static String canonicalGranularity(String name) { return Granularity.parse(name).id(); }

    /** Whether an activation granularity gives one parameter set per token (token, group, block): computed online. */
    public static boolean onlineGranularity(String name) {
        Granularity g = Granularity.parse(name);
        return g instanceof Granularity.PerToken || g instanceof Granularity.PerGroup || g instanceof Granularity.PerBlock;
    }

    /** How activation parameters can be found (CalibrationMode ids). */
    public static final List<String> ACTIVATION_MODES = List.of("static", "per_timestep", "dynamic");
    /** Common range estimators (RangeSpec ids). */
    public static final List<String> RANGES = List.of("minmax", "lp", "lp-qdit", "percentile99.99", "ema");

    /** The granularity a block format needs (block32 for MX, block16 for NVFP4), or null for other formats. */
    public static String requiredGranularity(String formatName) {
        if (isFloat(formatName)) return null;
        return format(formatName) instanceof BlockFormat b ? b.granularity().id() : null;
    }

    /**
     * Average stored bits per element of a weight of this shape in this format and granularity (32 for float):
     * {@link NumberFormat#averageBits(int[], Layout, Granularity)}. Throws if the format cannot use the granularity.
     */
    public static double averageWeightBits(String formatName, String granularityName, int[] weightShape) {
        if (isFloat(formatName)) return 32.0;
        NumberFormat f = format(formatName);
        Granularity g = Granularity.parse(granularityName);
        f.checkGranularity(g);
        return f.averageBits(weightShape, Layout.WEIGHT, g);
    }
}
