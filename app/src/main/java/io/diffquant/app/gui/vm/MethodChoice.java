package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Presets;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.StringJoiner;

/**
 * The method preset a configuration starts from (docs/methods.md: rtn, q-diffusion, q-dit, fp4dit, and the temporal
 * presets once they exist) and the options given to it, exactly as {@code diffquant calibrate --method P --option k=v}.
 * The layer table's edits are overrides on top of the preset's plan.
 *
 * @param preset  preset name ({@link Presets#byName})
 * @param options options as given (unknown names fail in {@link #resolvedOptions()}); unmodifiable
 */
public record MethodChoice(String preset, Map<String, Object> options) {
    /** The default: round to nearest with its default options (W8A8 INT). */
    public static final MethodChoice DEFAULT = new MethodChoice("rtn", Map.of());

    public MethodChoice {
        if (preset == null || preset.isBlank()) throw new IllegalArgumentException("method preset name is empty");
        options = Collections.unmodifiableMap(new LinkedHashMap<>(options == null ? Map.of() : options));
    }

    public static MethodChoice of(String preset) { return new MethodChoice(preset, Map.of()); }

    public Preset presetInstance() { return Presets.byName(preset); }

    /** Options checked against the preset with its defaults filled in; throws naming a bad option. */
    public PresetOptions resolvedOptions() { return PresetOptions.resolve(presetInstance(), options); }

    public MethodChoice withOption(String key, Object value) {
        Map<String, Object> m = new LinkedHashMap<>(options);
        if (value == null) m.remove(key); else m.put(key, value);
        return new MethodChoice(preset, m);
    }

    /** "q-dit (w_bits=4, group_size=64)" or "rtn". */
    public String label() {
        if (options.isEmpty()) return preset;
        StringJoiner j = new StringJoiner(", ", preset + " (", ")");
        options.forEach((k, v) -> j.add(k + "=" + v));
        return j.toString();
    }

    @Override public String toString() { return label(); }
}
