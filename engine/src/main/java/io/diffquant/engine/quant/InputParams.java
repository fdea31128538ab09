package io.diffquant.engine.quant;

import java.util.Collections;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

/**
 * Calibrated input-activation parameters of a quant point: either one shared set (static, Q-Diffusion) or one set per
 * sampling timestep VALUE (TFMQ's finite set calibration; keyed by the original timestep value t, never by the loop
 * index, ALGORITHMS.md §1).
 */
public final class InputParams {
    private final ActivationParams shared;
    private final NavigableMap<Float, ActivationParams> perTimestep;

    private InputParams(ActivationParams shared, NavigableMap<Float, ActivationParams> perTimestep) {
        this.shared = shared;
        this.perTimestep = perTimestep;
    }

    public static InputParams shared(ActivationParams p) {
        if (p == null) throw new IllegalArgumentException("shared activation parameters are null");
        return new InputParams(p, null);
    }

    /** One set per timestep value (copied; keys must be finite). */
    public static InputParams perTimestep(Map<Float, ActivationParams> byT) {
        if (byT == null || byT.isEmpty()) throw new IllegalArgumentException("per-timestep activation parameters need at least one timestep");
        TreeMap<Float, ActivationParams> m = new TreeMap<>();
        for (Map.Entry<Float, ActivationParams> e : byT.entrySet()) {
            if (e.getKey() == null || !Float.isFinite(e.getKey())) throw new IllegalArgumentException("timestep key " + e.getKey() + " is not finite");
            if (e.getValue() == null) throw new IllegalArgumentException("parameters of timestep " + e.getKey() + " are null");
            m.put(e.getKey() == 0f ? 0f : e.getKey(), e.getValue());   // -0 and +0 are one timestep
        }
        return new InputParams(null, Collections.unmodifiableNavigableMap(m));
    }

    public boolean isPerTimestep() { return perTimestep != null; }

    /** The shared set (null when per timestep). */
    public ActivationParams shared() { return shared; }

    /** The per-timestep sets in ascending t (null when shared). */
    public NavigableMap<Float, ActivationParams> perTimestep() { return perTimestep; }

    /** The set for timestep value t; null when per timestep and t was not calibrated. */
    public ActivationParams at(float t) {
        return perTimestep == null ? shared : perTimestep.get(t == 0f ? 0f : t);
    }

    /** Number of parts of every set. */
    public int parts() { return perTimestep == null ? shared.size() : perTimestep.firstEntry().getValue().size(); }

    @Override public boolean equals(Object o) {
        return o instanceof InputParams p && java.util.Objects.equals(p.shared, shared) && java.util.Objects.equals(p.perTimestep, perTimestep);
    }

    @Override public int hashCode() { return java.util.Objects.hash(shared, perTimestep); }

    @Override public String toString() {
        return perTimestep == null ? "InputParams[" + shared + "]" : "InputParams[" + perTimestep.size() + " timesteps]";
    }
}
