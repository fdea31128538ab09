package io.diffquant.engine.quant.config;

import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Presets;

import java.util.Map;

/** The method a config was made with: the preset's name and its complete options (defaults filled in). */
public record MethodSettings(String preset, PresetOptions options) {
    public MethodSettings {
        if (preset == null) throw new IllegalArgumentException("method preset is null");
        if (options == null) throw new IllegalArgumentException("method options are null");
    }

    /** Validated settings for a preset name and given options (unknown preset or option: IllegalArgumentException). */
    public static MethodSettings of(String preset, Map<String, ?> given) {
        Preset p = Presets.byName(preset);
        return new MethodSettings(p.name(), PresetOptions.resolve(p, given));
    }

    public Preset presetInstance() { return Presets.byName(preset); }
}
