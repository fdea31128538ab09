package io.diffquant.engine.quant.preset;

import java.util.ArrayList;
import java.util.List;

/** The method presets by name (docs/methods.md). */
public final class Presets {
    private Presets() {}

    private static final List<Preset> ALL = List.of(new RtnPreset(), new QDiffusionPreset(), new QDiTPreset(), new Fp4DiTPreset(),
            TfmqPreset.tfmq(), TfmqPreset.cache(), TfmqPreset.ds());

    public static List<Preset> all() { return ALL; }

    public static List<String> names() {
        List<String> n = new ArrayList<>();
        for (Preset p : ALL) n.add(p.name());
        return n;
    }

    /** The preset of a name; unknown names list the valid ones. */
    public static Preset byName(String name) {
        for (Preset p : ALL) if (p.name().equals(name)) return p;
        throw new IllegalArgumentException("unknown method preset \"" + name + "\"; valid: " + String.join(", ", names()));
    }
}
