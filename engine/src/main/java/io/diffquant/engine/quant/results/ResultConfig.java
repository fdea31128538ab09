package io.diffquant.engine.quant.results;

import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.Presets;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One row of the results table (issue 4 "Tests and bar"): a method preset at W{w}A{a} with INT or FP formats for both
 * weights and activations (the presets' {@code w_format}/{@code a_format} families, docs/methods.md).
 */
public record ResultConfig(String preset, int wBits, int aBits, String format) {
    public static final List<String> FORMATS = List.of("int", "fp");

    public ResultConfig {
        Presets.byName(preset);
        if (wBits < 2 || wBits > 8 || aBits < 2 || aBits > 8) throw new IllegalArgumentException("W" + wBits + "A" + aBits
                + ": weight and activation bits must be 2..8");
        format = format.toLowerCase(Locale.ROOT);
        if (!FORMATS.contains(format)) throw new IllegalArgumentException("format '" + format + "': expected int or fp");
    }

    /** "W4A8". */
    public String bits() { return "W" + wBits + "A" + aBits; }

    /** "rtn-w4a8-int": a file name. */
    public String id() { return preset + "-" + bits().toLowerCase(Locale.ROOT) + "-" + format; }

    /** "rtn W4A8 INT". */
    public String label() { return preset + " " + bits() + " " + format.toUpperCase(Locale.ROOT); }

    /** The preset options of this row: the bits and formats, then the extra options the preset declares. */
    public Map<String, Object> options(Map<String, String> extra) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("w_bits", wBits);
        o.put("a_bits", aBits);
        o.put("w_format", format);
        o.put("a_format", format);
        for (Map.Entry<String, String> e : extra.entrySet()) if (declares(preset, e.getKey())) o.put(e.getKey(), e.getValue());
        return o;
    }

    /** Whether a preset has an option of this name. */
    public static boolean declares(String preset, String option) {
        for (OptionDef d : Presets.byName(preset).options()) if (d.name().equals(option)) return true;
        return false;
    }

    /** {W, A} of "W4A8" (case-insensitive). */
    public static int[] parseBits(String s) {
        var m = java.util.regex.Pattern.compile("[wW](\\d)[aA](\\d)").matcher(s.trim());
        if (!m.matches()) throw new IllegalArgumentException("bit setting '" + s + "': expected W<bits>A<bits>, e.g. W4A8");
        return new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))};
    }

    /** Every preset x bits x format, presets outermost (the table's order). */
    public static List<ResultConfig> grid(List<String> presets, List<String> bits, List<String> formats) {
        List<ResultConfig> out = new ArrayList<>();
        for (String p : presets) for (String b : bits) for (String f : formats) {
            int[] wa = parseBits(b);
            out.add(new ResultConfig(p, wa[0], wa[1], f));
        }
        return out;
    }
}
