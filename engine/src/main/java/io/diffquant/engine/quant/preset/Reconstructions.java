package io.diffquant.engine.quant.preset;

import io.diffquant.engine.quant.recon.BrecqReconstruction;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Registry of {@link Reconstruction} implementations by name. Built in: {@code none}, {@code brecq} (BRECQ block
 * reconstruction with AdaRound / scale-aware FP AdaRound) and {@code adaround} (layer by layer), see
 * {@link BrecqReconstruction}; others can be added with {@link #register}.
 */
public final class Reconstructions {
    private Reconstructions() {}

    /** The implementations shipped with the engine, in the order help texts list them. */
    static final List<Reconstruction> BUILT_IN = List.of(Reconstruction.NONE, BrecqReconstruction.BRECQ, BrecqReconstruction.ADAROUND);

    private static final Map<String, Reconstruction> EXTRA = new ConcurrentHashMap<>();

    /** Adds (or replaces) an implementation under its name. */
    public static void register(Reconstruction r) {
        if (r == null || r.name() == null) throw new IllegalArgumentException("reconstruction needs a name");
        EXTRA.put(r.name(), r);
    }

    public static List<String> names() {
        List<String> n = new ArrayList<>();
        for (Reconstruction r : BUILT_IN) n.add(r.name());
        for (String k : EXTRA.keySet()) if (!n.contains(k)) n.add(k);
        return n;
    }

    /** The implementation of a name; unknown names list the valid ones. */
    public static Reconstruction byName(String name) {
        Reconstruction r = EXTRA.get(name);
        if (r != null) return r;
        for (Reconstruction b : BUILT_IN) if (b.name().equals(name)) return b;
        throw new IllegalArgumentException("unknown reconstruction \"" + name + "\"; available: " + String.join(", ", names()));
    }
}
