package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.GuidanceMode;
import io.diffquant.engine.diffusion.SampleBatches;
import picocli.CommandLine.Option;

/** The sampling options shared by sample and eval, turned into {@link SampleBatches.Settings}. */
final class SamplingOptions {
    @Option(names = "--sampler", defaultValue = "ddim", description = "ddim or ddpm (default: ${DEFAULT-VALUE})") String sampler;
    @Option(names = "--steps", defaultValue = "50", description = "sampling steps (respacing of the 1000 training steps; default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--eta", defaultValue = "0", description = "DDIM eta (default: ${DEFAULT-VALUE})") double eta;
    @Option(names = "--schedule", defaultValue = "linear", description = "noise schedule: linear, scaled_linear, cosine (default: ${DEFAULT-VALUE})") String schedule;
    @Option(names = "--cfg", defaultValue = "1", description = "classifier-free guidance scale; 1 = no guidance (default: ${DEFAULT-VALUE})") double cfg;
    @Option(names = "--cfg-mode", defaultValue = "all", description = "all (guidance on every eps channel) or dit (first 3 channels, as the official DiT code)") String cfgMode;
    @Option(names = "--seed", defaultValue = "0", description = "sampling seed (default: ${DEFAULT-VALUE})") long seed;

    static GuidanceMode guidanceMode(String name) {
        return switch (name) {
            case "all" -> GuidanceMode.ALL_CHANNELS;
            case "dit" -> GuidanceMode.DIT_COMPATIBLE;
            default -> throw new IllegalArgumentException("--cfg-mode must be 'all' or 'dit', got '" + name + "'");
        };
    }

    /** The settings with a batch size; bad values are one-line errors naming the option. */
    SampleBatches.Settings settings(int batch) {
        if (steps < 1) throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        if (batch < 1) throw new IllegalArgumentException("--batch must be >= 1, got " + batch);
        GuidanceMode mode = guidanceMode(cfgMode);
        try {
            return new SampleBatches.Settings(sampler, steps, eta, schedule, cfg, mode, seed, batch);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--sampler/--schedule/--cfg: " + e.getMessage(), e);
        }
    }

    /** A progress line on stderr ("\r" updated). */
    static SampleBatches.Listener progress(String what) {
        return (from, n, count, st) -> System.err.printf("\r%s %d-%d of %d: step %d/%d (t=%d)   ", what, from + 1, from + n, count,
                st.index() + 1, st.totalSteps(), st.t());
    }
}
