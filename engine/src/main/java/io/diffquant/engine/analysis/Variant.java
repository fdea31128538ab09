package io.diffquant.engine.analysis;

import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPoint;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

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

        /**
         * Applies what the given layers compute with (e.g. only the Temporal Information Block when only temporal
         * features are evaluated); the outputs of those layers must be the same as with {@link #apply}. Default: everything.
         */
        default Applied applyTo(DiffusionModel model, Set<String> layers) { return apply(model); }
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
            private QuantConfigs.Bound bound, restricted;
            private DiffusionModel boundTo, restrictedTo;
            private Set<String> restrictedLayers;

            @Override public synchronized Applied apply(DiffusionModel model) {
                if (bound == null || boundTo != model) {
                    bound = bind(config, model);
                    boundTo = model;
                }
                return attach(bound, model);
            }

            @Override public synchronized Applied applyTo(DiffusionModel model, Set<String> layers) {
                if (restricted == null || restrictedTo != model || !layers.equals(restrictedLayers)) {
                    restricted = bind(restrict(config, model, layers), model);
                    restrictedTo = model;
                    restrictedLayers = Set.copyOf(layers);
                }
                return attach(restricted, model);
            }

            private QuantConfigs.Bound bind(QuantConfig c, DiffusionModel model) {
                try {
                    return QuantConfigs.bind(c, model, force);
                } catch (JsonException e) {
                    throw new IllegalArgumentException("variant '" + name + "': " + e.getMessage(), e);
                }
            }

            private Applied attach(QuantConfigs.Bound b, DiffusionModel model) {
                QuantizedModel q;
                try {
                    q = b.attach(model);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("variant '" + name + "' (" + config.sourceOr("config") + "): " + e.getMessage(), e);
                }
                return q::detach;
            }
        });
    }

    /** The config with every quant point outside {@code layers} in full precision (and its parameters dropped). */
    static QuantConfig restrict(QuantConfig c, DiffusionModel model, Set<String> layers) {
        List<LayerOverride> ov = new ArrayList<>(c.overrides());
        for (QuantPoint p : QuantPoint.of(model)) {
            if (!layers.contains(p.name())) ov.add(LayerOverride.fullPrecision(p.name()).withOrigin("analysis: outside the evaluated layers"));
        }
        Map<String, LayerParams> kept = new LinkedHashMap<>();
        for (Map.Entry<String, LayerParams> e : c.params().layers().entrySet()) if (layers.contains(e.getKey())) kept.put(e.getKey(), e.getValue());
        return c.withOverrides(ov).withParams(new CalibratedParams(kept));
    }

    /**
     * An already attached quantization: switched off now (so full-precision quantities computed by an analysis are
     * really full precision) and switched on only while the variant is applied. Its owner detaches it. Only the fake
     * quantization is switched ({@link QuantizedModel#setWeightQuantization}, {@link QuantizedModel#setInputQuantization}):
     * hooks attached with it (TFMQ's cached temporal features) stay active, so give such configs as
     * {@link #of(String, QuantConfig, boolean)} instead.
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

    /** Applies what the given layers compute with ({@link Application#applyTo}). */
    public Applied applyTo(DiffusionModel model, Set<String> layers) { return application.applyTo(model, layers); }

    @Override public String toString() { return "Variant[" + name + "]"; }
}
