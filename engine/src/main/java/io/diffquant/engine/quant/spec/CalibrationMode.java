package io.diffquant.engine.quant.spec;

import java.util.Locale;

/**
 * How an activation quantizer gets its parameters (ALGORITHMS.md §4, §6, §7): fixed after calibration (Q-Diffusion),
 * computed from every input at run time (Q-DiT's dynamic group / FP4DiT's online per-token quantization), or one fixed
 * set per sampling timestep VALUE (TFMQ's finite set calibration, FSC). Weights are always {@link #STATIC}.
 */
public enum CalibrationMode {
    STATIC("static"), DYNAMIC("dynamic"), PER_TIMESTEP("per_timestep");

    private final String id;

    CalibrationMode(String id) { this.id = id; }

    /** Name used in configs and on the command line. */
    public String id() { return id; }

    /** Parses {@code static}, {@code dynamic} or {@code per_timestep} (also {@code per-timestep}). */
    public static CalibrationMode parse(String s) {
        if (s != null) {
            String v = s.trim().toLowerCase(Locale.ROOT).replace('-', '_');
            for (CalibrationMode m : values()) if (m.id.equals(v)) return m;
        }
        throw new IllegalArgumentException("unknown calibration mode '" + s + "'; valid: static, dynamic, per_timestep");
    }
}
