package io.diffquant.engine.quant.config;

import com.fasterxml.jackson.databind.JsonNode;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;

import java.util.List;
import java.util.Map;

/**
 * A quantization config (docs/config-format.md, schema version {@value #SCHEMA_VERSION}): which model it is for,
 * the method it was made with, the calibration data settings, the default weight and input specs, per-layer overrides
 * (glob patterns over state_dict prefixes, later entries win), the calibrated parameters (so a config reproduces a
 * quantized model without recalibrating) and free-form extensions (objects later methods add, kept verbatim).
 * Read and written by {@link QuantConfigCodec}; applied to a model by {@link QuantConfigs}.
 *
 * @param method      the preset and its options, or null for a hand-written config
 * @param calibration the calibration data settings, or null when none were used
 * @param source      where the config was read from (for messages), or null; not part of the value written
 * @param temporal    TFMQ's temporal feature maintenance (switches, cached features, selection map), or null
 */
public record QuantConfig(ModelIdentity model, MethodSettings method, CalibrationSettings calibration, PointSpec defaults,
                          List<LayerOverride> overrides, CalibratedParams params, Map<String, JsonNode> extensions, String source,
                          TemporalSection temporal) {
    public static final int SCHEMA_VERSION = 1;
    public static final String SCHEMA = "diffquant-quant-config";

    public QuantConfig {
        if (model == null) throw new IllegalArgumentException("config needs a model identity");
        if (defaults == null) throw new IllegalArgumentException("config needs default specs");
        overrides = overrides == null ? List.of() : List.copyOf(overrides);
        if (params == null) params = CalibratedParams.EMPTY;
        extensions = extensions == null ? Map.of() : java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(extensions));
    }

    /** A config without a temporal section. */
    public QuantConfig(ModelIdentity model, MethodSettings method, CalibrationSettings calibration, PointSpec defaults,
                       List<LayerOverride> overrides, CalibratedParams params, Map<String, JsonNode> extensions, String source) {
        this(model, method, calibration, defaults, overrides, params, extensions, source, null);
    }

    public QuantConfig withParams(CalibratedParams p) {
        return new QuantConfig(model, method, calibration, defaults, overrides, p, extensions, source, temporal);
    }

    public QuantConfig withOverrides(List<LayerOverride> o) {
        return new QuantConfig(model, method, calibration, defaults, o, params, extensions, source, temporal);
    }

    public QuantConfig withSource(String s) {
        return new QuantConfig(model, method, calibration, defaults, overrides, params, extensions, s, temporal);
    }

    public QuantConfig withExtension(String key, JsonNode value) {
        Map<String, JsonNode> m = new java.util.LinkedHashMap<>(extensions);
        m.put(key, value);
        return new QuantConfig(model, method, calibration, defaults, overrides, params, m, source, temporal);
    }

    public QuantConfig withTemporal(TemporalSection t) {
        return new QuantConfig(model, method, calibration, defaults, overrides, params, extensions, source, t);
    }

    /** "config.json" or the given fallback, for messages. */
    public String sourceOr(String fallback) { return source == null ? fallback : source; }
}
