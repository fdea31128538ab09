package io.diffquant.engine.quant.config;

import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Applies a {@link QuantConfig} to a model: checks that the config belongs to the model (architecture, structure and
 * weights hashes; {@code force} skips the check), resolves the layer specs and checks the calibrated parameters
 * against them, with errors that name the config file and JSON path.
 */
public final class QuantConfigs {
    private QuantConfigs() {}

    /** A config resolved for a model. */
    public record Bound(QuantConfig config, QuantPlan plan, CalibratedParams params) {
        /** Attaches the quantization and, when the config has cached temporal features, TFMQ's cache hooks (detached with it). */
        public QuantizedModel attach(DiffusionModel model) {
            QuantizedModel q = QuantizedModel.attach(model, plan, params);
            try {
                io.diffquant.engine.temporal.TemporalRuntime.attach(q, config.temporal());
            } catch (IllegalArgumentException e) {
                q.detach();
                throw new IllegalArgumentException("temporal: " + e.getMessage(), e);
            }
            return q;
        }
    }

    /** Reads a config file and attaches it to the model (the {@code sample --config} entry point). */
    public static QuantizedModel apply(DiffusionModel model, Path configFile, boolean force) throws IOException {
        return attach(QuantConfigCodec.read(configFile), model, force);
    }

    /** Binds and attaches. */
    public static QuantizedModel attach(QuantConfig c, DiffusionModel model, boolean force) throws JsonException {
        Bound b = bind(c, model, force);
        try {
            return b.attach(model);
        } catch (IllegalArgumentException e) {
            String msg = e.getMessage();
            if (msg != null && msg.startsWith("temporal: ")) throw new JsonException(c.sourceOr("config"), "$.temporal", msg.substring(10), e);
            throw new JsonException(c.sourceOr("config"), "$.params", msg, e);
        }
    }

    /**
     * Resolves a config for a model.
     * @param force apply even if the config was made for another model (different weights or structure)
     */
    public static Bound bind(QuantConfig c, DiffusionModel model, boolean force) throws JsonException {
        String src = c.sourceOr("config");
        if (!force) {
            String mm = c.model().mismatch(ModelIdentity.of(model, c.model().name()));
            if (mm != null) throw new JsonException(src, "$.model", "refusing to apply this config: " + mm
                    + "; use --force (force = true) to apply it anyway");
        }
        QuantPlan plan;
        try {
            plan = QuantPlan.resolve(model, c.defaults(), c.overrides());
        } catch (IllegalArgumentException e) {
            String msg = e.getMessage();
            throw new JsonException(src, null, msg.startsWith("$") || msg.startsWith("defaults") ? (msg.startsWith("$") ? msg : "$." + msg) : msg, e);
        }
        for (Map.Entry<String, LayerParams> e : c.params().layers().entrySet()) {
            String layer = e.getKey();
            String path = "$.params" + field(layer);
            QuantPoint p = plan.point(layer);
            if (p == null) throw new JsonException(src, path, "'" + layer + "' is not a quant point of this " + model.architecture()
                    + " (a Linear/Conv2d layer or an attention probe)");
            PointSpec s = plan.spec(layer);
            LayerParams lp = e.getValue();
            if (lp.weight() != null) {
                if (!s.weight().enabled()) throw new JsonException(src, path + ".weight", "parameters for a weight the specs leave in full precision");
                int groups = new GroupView(s.weight().granularity(), Layout.WEIGHT, p.weightShape()).groups();
                if (groups != lp.weight().params().groups()) throw new JsonException(src, path + ".weight.scales", lp.weight().params().groups()
                        + " parameter groups, but " + s.weight().describe(io.diffquant.engine.quant.spec.TensorSpec.Role.WEIGHT) + " on "
                        + java.util.Arrays.toString(p.weightShape()) + " has " + groups);
            }
            InputParams in = lp.input();
            if (in != null) {
                if (!s.input().calibrated()) throw new JsonException(src, path + ".input", "calibrated input parameters, but the input spec is "
                        + (s.input().enabled() ? "dynamic" : "off"));
                boolean perT = s.input().mode() == CalibrationMode.PER_TIMESTEP;
                if (in.isPerTimestep() != perT) throw new JsonException(src, path + ".input", "the input spec is " + s.input().mode().id()
                        + ", the parameters are " + (in.isPerTimestep() ? "per_timestep" : "shared"));
                if (in.parts() != p.inputParts()) throw new JsonException(src, path + ".input", in.parts() + " parameter parts, the input has "
                        + p.inputParts() + (p.splitAt() >= 0 ? " (skip concatenation split at channel " + p.splitAt() + ")" : ""));
            }
        }
        if (c.temporal() != null && !c.temporal().features().isEmpty()) {
            try {
                io.diffquant.engine.temporal.TemporalRuntime.check(model, c.temporal());
            } catch (IllegalArgumentException e) {
                throw new JsonException(src, "$.temporal", e.getMessage(), e);
            }
        }
        return new Bound(c, plan, c.params());
    }

    private static String field(String name) {
        return name.matches("[A-Za-z_][A-Za-z0-9_]*") ? "." + name : "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']";
    }
}
