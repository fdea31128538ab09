package io.diffquant.app.cli;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/** The --config / --force options of sample and eval: a quantization config applied to the loaded model (docs/config-format.md). */
final class QuantConfigOption {
    @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "quantization config (from calibrate) applied to the model before sampling: fake quantization") Path config;
    @Option(names = "--force", description = "apply the config even if it was calibrated for another model (other weights or structure)") boolean force;

    /**
     * Applies the config to the model (null when no --config was given). A config made for another model is refused
     * (the error names the config file, $.model and --force) unless --force.
     */
    Applied apply(DiffusionModel m) throws IOException {
        if (config == null) {
            if (force) throw new IllegalArgumentException("--force given without --config");
            return null;
        }
        return apply(config, m, force);
    }

    /** Reads a config file and attaches it to the model (refused for another model unless force). */
    static Applied apply(Path config, DiffusionModel m, boolean force) throws IOException {
        QuantConfig c = QuantConfigCodec.read(config);
        QuantizedModel q = QuantConfigs.attach(c, m, force);
        Applied a = new Applied(c, q, describe(c, q) + (force ? " (--force)" : ""));
        return a;
    }

    /** A config attached to the model; {@link #detach()} restores full precision. */
    record Applied(QuantConfig config, QuantizedModel model, String summary) {
        void detach() { model.detach(); }
    }

    /** E.g. "rtn, 36 of 38 weights quantized, 4.02 average weight bits". */
    static String describe(QuantConfig c, QuantizedModel q) {
        long weights = q.plan().points().stream().filter(p -> p.hasWeight()).count();
        long quantized = q.plan().specs().values().stream().filter(s -> s.weight().enabled()).count();
        return String.format(Locale.ROOT, "%s, %d of %d weights quantized, %.2f average weight bits",
                c.method() == null ? "hand-written" : c.method().preset(), quantized, weights, q.plan().averageWeightBits());
    }
}
