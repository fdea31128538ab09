package io.diffquant.engine.analysis;

import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;

/**
 * A named way of running the model that an analysis compares with full precision (the configurations of TFMQ-DM's
 * ablations: baseline, TIAR, FSC, TIAR+FSC, cache, selection): a quantization config applied for the duration of one
 * evaluation, an already attached {@link QuantizedModel} switched on for it, or full precision.
 *
 * @param name        the name shown in plots and tables
 * @param application how to apply it to the model
 */
public record Variant(String name, Application application) {

    /** Applies a variant to a model; the returned handle undoes it. */
    @FunctionalInterface
    public interface Application {
        Applied apply(DiffusionModel model);
    }

    /** An applied variant; {@link #close()} returns the model to full precision. */
    @FunctionalInterface
    public interface Applied extends AutoCloseable {
        @Override void close();
    }

    public Variant {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("a variant needs a name");
        if (application == null) throw new IllegalArgumentException("variant '" + name + "': no application");
    }

    /** Full precision (nothing applied). */
    public static Variant fullPrecision(String name) {
        return new Variant(name, m -> () -> { });
    }

    /**
     * A quantization config, bound to the model once and attached for each evaluation ({@link QuantConfigs#bind}).
     * @param force apply even if the config was calibrated for other weights
     */
    public static Variant of(String name, QuantConfig config, boolean force) {
        if (config == null) throw new IllegalArgumentException("variant '" + name + "': config is null");
        return new Variant(name, new Application() {
            private QuantConfigs.Bound bound;
            private DiffusionModel boundTo;

            @Override public synchronized Applied apply(DiffusionModel model) {
                if (bound == null || boundTo != model) {
                    try {
                        bound = QuantConfigs.bind(config, model, force);
                    } catch (JsonException e) {
                        throw new IllegalArgumentException("variant '" + name + "': " + e.getMessage(), e);
                    }
                    boundTo = model;
                }
                QuantizedModel q;
                try {
                    q = bound.attach(model);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("variant '" + name + "' (" + config.sourceOr("config") + "): " + e.getMessage(), e);
                }
                return q::detach;
            }
        });
    }

    /**
     * An already attached quantization: switched off now (so full-precision quantities computed by an analysis are
     * really full precision) and switched on only while the variant is applied. Its owner detaches it.
     */
    public static Variant of(String name, QuantizedModel attached) {
        if (attached == null) throw new IllegalArgumentException("variant '" + name + "': quantized model is null");
        attached.setWeightQuantization(false);
        attached.setInputQuantization(false);
        return new Variant(name, model -> {
            if (attached.model() != model) throw new IllegalArgumentException("variant '" + name + "' is attached to another model");
            if (!attached.attached()) throw new IllegalStateException("variant '" + name + "': the quantized model was detached");
            attached.setWeightQuantization(true);
            attached.setInputQuantization(true);
            return () -> {
                attached.setWeightQuantization(false);
                attached.setInputQuantization(false);
            };
        });
    }

    /** Applies this variant. */
    public Applied apply(DiffusionModel model) { return application.apply(model); }

    @Override public String toString() { return "Variant[" + name + "]"; }
}
