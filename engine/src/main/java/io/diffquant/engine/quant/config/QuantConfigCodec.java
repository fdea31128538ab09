package io.diffquant.engine.quant.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Reads and writes {@link QuantConfig} as JSON (docs/config-format.md). Writing is deterministic (the same config gives
 * the same bytes; floats are written as their shortest decimal and read back exactly), so export -> import -> export is
 * byte-identical. Every error names the file and the JSON path of the offending value. Learned weight codes (from
 * reconstruction) go to a sidecar safetensors file {@code <config name>.codes.safetensors} whose sha256 the JSON records.
 */
public final class QuantConfigCodec {
    private QuantConfigCodec() {}

    static final Set<String> ROOT = set("schema", "schema_version", "model", "method", "calibration", "defaults", "overrides", "params",
            "codes_file", "extensions", "temporal");
    static final Set<String> SPEC = set("format", "granularity", "range", "mode");
    static final Set<String> PATCH = set("enabled", "format", "granularity", "range", "mode");
    static final Set<String> OVERRIDE = set("pattern", "weight", "input");
    static final Set<String> QPARAMS = set("scales", "zero_points", "tensor_scale");
    static final Set<String> WPARAMS = set("scales", "zero_points", "tensor_scale", "codes");

    private static Set<String> set(String... s) { return new LinkedHashSet<>(List.of(s)); }

    // ================================================================== write

    /** The JSON text of a config (no sidecar: configs with learned codes need {@link #write(QuantConfig, Path)}). */
    public static String toJson(QuantConfig c) {
        return ConfigJson.write(tree(c, null, null, null));
    }

    /**
     * The JSON text of a config embedded in a safetensors file (a quantized checkpoint) that also holds the cached
     * temporal features under {@code temporalPrefix} (written with {@link #addTemporalTensors}).
     */
    public static String toJson(QuantConfig c, String temporalPrefix) {
        return ConfigJson.write(tree(c, null, null, temporalPrefix));
    }

    /** Adds the cached temporal features of a config (if any) to a safetensors writer, names prefixed with {@code prefix}. */
    public static void addTemporalTensors(QuantConfig c, SafetensorsWriter w, String prefix) {
        TemporalSectionCodec.addTensors(c.temporal(), w, prefix);
    }

    /** Writes the config atomically (and its codes sidecar when any weight has learned codes). */
    public static void write(QuantConfig c, Path file) throws IOException {
        ObjectNode codesRef = null;
        if (hasCodes(c.params())) {
            String name = sidecarName(file);
            SafetensorsWriter w = new SafetensorsWriter();
            for (Map.Entry<String, LayerParams> e : c.params().layers().entrySet()) {
                WeightParams wp = e.getValue().weight();
                if (wp != null && wp.hasCodes()) w.addRaw(e.getKey(), DType.U8, new long[] {wp.codes().length}, wp.codes());
            }
            Path side = file.toAbsolutePath().resolveSibling(name);
            w.write(side);
            codesRef = ConfigJson.object();
            codesRef.put("path", name);
            codesRef.put("sha256", ConfigJson.sha256(side));
        }
        ObjectNode temporalRef = TemporalSectionCodec.writeSidecar(c.temporal(), file);
        AtomicFiles.writeString(file, ConfigJson.write(tree(c, codesRef, temporalRef, null)));
    }

    static String sidecarName(Path file) {
        String n = file.getFileName().toString();
        if (n.endsWith(".json")) n = n.substring(0, n.length() - 5);
        return n + ".codes.safetensors";
    }

    private static boolean hasCodes(CalibratedParams p) {
        for (LayerParams l : p.layers().values()) if (l.weight() != null && l.weight().hasCodes()) return true;
        return false;
    }

    static ObjectNode tree(QuantConfig c, ObjectNode codesRef, ObjectNode temporalRef, String temporalPrefix) {
        ObjectNode o = ConfigJson.object();
        o.put("schema", QuantConfig.SCHEMA);
        o.put("schema_version", QuantConfig.SCHEMA_VERSION);
        o.set("model", c.model().toJson());
        if (c.method() != null) {
            ObjectNode m = o.putObject("method");
            m.put("preset", c.method().preset());
            ObjectNode opts = m.putObject("options");
            for (Map.Entry<String, Object> e : c.method().options().values().entrySet()) {
                Object v = e.getValue();
                switch (v) {
                    case Integer i -> opts.put(e.getKey(), i);
                    case Double d -> opts.put(e.getKey(), d);
                    case Boolean b -> opts.put(e.getKey(), b);
                    default -> opts.put(e.getKey(), v.toString());
                }
            }
        }
        if (c.calibration() != null) o.set("calibration", c.calibration().toJson());
        ObjectNode d = o.putObject("defaults");
        d.set("weight", spec(c.defaults().weight(), TensorSpec.Role.WEIGHT));
        d.set("input", spec(c.defaults().input(), TensorSpec.Role.INPUT));
        ArrayNode ov = o.putArray("overrides");
        for (LayerOverride l : c.overrides()) {
            ObjectNode x = ov.addObject();
            x.put("pattern", l.pattern());
            if (!l.weight().isKeep()) x.set("weight", patch(l.weight()));
            if (!l.input().isKeep()) x.set("input", patch(l.input()));
        }
        ObjectNode ps = o.putObject("params");
        for (Map.Entry<String, LayerParams> e : c.params().layers().entrySet()) {
            ObjectNode lp = ps.putObject(e.getKey());
            WeightParams w = e.getValue().weight();
            if (w != null) {
                ObjectNode wn = qparams(w.params());
                if (w.hasCodes()) wn.put("codes", true);
                lp.set("weight", wn);
            }
            InputParams in = e.getValue().input();
            if (in != null) {
                ObjectNode inN = lp.putObject("input");
                if (in.isPerTimestep()) {
                    ObjectNode pt = inN.putObject("per_timestep");
                    for (Map.Entry<Float, ActivationParams> t : in.perTimestep().descendingMap().entrySet())
                        pt.set(QuantizedModel.timestepLabel(t.getKey()), parts(t.getValue()));
                } else {
                    inN.set("shared", parts(in.shared()));
                }
            }
        }
        if (codesRef != null) o.set("codes_file", codesRef);
        if (!c.extensions().isEmpty()) {
            ObjectNode ex = o.putObject("extensions");
            c.extensions().forEach(ex::set);
        }
        if (c.temporal() != null) o.set("temporal", TemporalSectionCodec.tree(c.temporal(), temporalRef, temporalPrefix));
        return o;
    }

    static JsonNode spec(TensorSpec s, TensorSpec.Role role) {
        if (!s.enabled()) return ConfigJson.object().textNode("off");
        ObjectNode o = ConfigJson.object();
        o.put("format", s.format().id());
        o.put("granularity", s.granularity().id());
        o.put("range", s.range().id());
        if (role == TensorSpec.Role.INPUT) o.put("mode", s.mode().id());
        return o;
    }

    static JsonNode patch(SpecPatch p) {
        if (p.isOff()) return ConfigJson.object().textNode("off");
        ObjectNode o = ConfigJson.object();
        if (p.enabled() != null) o.put("enabled", p.enabled());
        if (p.format() != null) o.put("format", p.format().id());
        if (p.granularity() != null) o.put("granularity", p.granularity().id());
        if (p.range() != null) o.put("range", p.range().id());
        if (p.mode() != null) o.put("mode", p.mode().id());
        return o;
    }

    static ObjectNode qparams(QuantParams p) {
        ObjectNode o = ConfigJson.object();
        o.set("scales", ConfigJson.floats(p.scales()));
        if (p.hasZeroPoints()) o.set("zero_points", ConfigJson.ints(p.zeroPoints()));
        if (Float.floatToIntBits(p.tensorScale()) != Float.floatToIntBits(1f)) o.put("tensor_scale", p.tensorScale());
        return o;
    }

    private static ArrayNode parts(ActivationParams a) {
        ArrayNode arr = ConfigJson.array();
        for (QuantParams p : a.parts()) arr.add(qparams(p));
        return arr;
    }

    // ================================================================== read

    /** Reads a config file (and its codes sidecar); errors name the file and JSON path. */
    public static QuantConfig read(Path file) throws IOException {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new JsonException(file.toString(), null, "no such file", e);
        }
        JsonView root = ConfigJson.parse(text, file.toString());
        Map<String, byte[]> codes = null;
        if (root.has("codes_file")) codes = readSidecar(root.get("codes_file"), file);
        return parse(root, codes, file, null);
    }

    /** Parses config text (no sidecar; a config that references learned codes needs {@link #read(Path)}). */
    public static QuantConfig parse(String text, String source) throws JsonException {
        return parse(text, source, null);
    }

    /**
     * Parses config text embedded in a safetensors file (a quantized checkpoint) whose cached temporal features are
     * tensors of that file ({@code embedded}; null = none).
     */
    public static QuantConfig parse(String text, String source, SafetensorsReader embedded) throws JsonException {
        JsonView root = ConfigJson.parse(text, source);
        if (root.has("codes_file")) throw root.error("codes_file", "this config references a codes sidecar file; read it from its file");
        try {
            return parse(root, null, null, embedded);
        } catch (JsonException e) {
            throw e;
        } catch (IOException e) {
            throw new JsonException(source, "$.temporal", e.getMessage(), e);
        }
    }

    private static Map<String, byte[]> readSidecar(JsonView ref, Path file) throws IOException {
        ConfigJson.requireOnly(ref, set("path", "sha256"));
        String name = ref.requireString("path");
        if (name.contains("/") || name.contains("\\")) throw ref.error("path", "must be a file name beside the config, got \"" + name + "\"");
        Path side = file.toAbsolutePath().resolveSibling(name);
        if (!Files.isRegularFile(side)) throw ref.error("path", "codes file " + side + " is missing");
        String sha = ConfigJson.sha256(side);
        if (!sha.equals(ref.requireString("sha256"))) throw ref.error("sha256", "codes file " + side + " has sha256 " + sha
                + ", the config expects " + ref.requireString("sha256") + " (the file was changed or belongs to another config)");
        Map<String, byte[]> m = new LinkedHashMap<>();
        try (SafetensorsReader r = SafetensorsReader.open(side)) {
            for (String n : r.names()) {
                if (r.info(n).dtype() != DType.U8) throw ref.error("path", side + ": tensor '" + n + "' must be U8 codes, got " + r.info(n).dtype());
                m.put(n, r.readBytes(n));
            }
        }
        return m;
    }

    static QuantConfig parse(JsonView root, Map<String, byte[]> codes, Path file, SafetensorsReader embedded) throws IOException {
        ConfigJson.requireOnly(root, ROOT);
        String schema = root.requireString("schema");
        if (!QuantConfig.SCHEMA.equals(schema)) throw root.error("schema", "expected \"" + QuantConfig.SCHEMA + "\", got \"" + schema + "\"");
        int version = root.requireInt("schema_version");
        if (version != QuantConfig.SCHEMA_VERSION) throw root.error("schema_version", "unsupported schema version " + version
                + " (this build reads version " + QuantConfig.SCHEMA_VERSION + ")");
        ModelIdentity id = ModelIdentity.fromJson(root.get("model"));
        MethodSettings method = root.has("method") ? method(root.get("method")) : null;
        CalibrationSettings cal = root.has("calibration") ? CalibrationSettings.fromJson(root.get("calibration")) : null;
        JsonView d = root.get("defaults");
        ConfigJson.requireOnly(d, set("weight", "input"));
        TensorSpec dw = spec(d.get("weight"), TensorSpec.Role.WEIGHT);
        TensorSpec di = spec(d.get("input"), TensorSpec.Role.INPUT);
        List<LayerOverride> overrides = new ArrayList<>();
        if (root.has("overrides")) {
            for (JsonView o : root.get("overrides").elements()) {
                ConfigJson.requireOnly(o, OVERRIDE);
                String pattern = o.requireString("pattern");
                if (pattern.isBlank()) throw o.error("pattern", "must not be empty");
                SpecPatch w = o.has("weight") ? patch(o.get("weight")) : SpecPatch.KEEP;
                SpecPatch in = o.has("input") ? patch(o.get("input")) : SpecPatch.KEEP;
                overrides.add(new LayerOverride(pattern, w, in, o.path()));
            }
        }
        Map<String, LayerParams> params = new LinkedHashMap<>();
        if (root.has("params")) {
            JsonView ps = root.get("params");
            for (String layer : ps.fieldNames()) {
                JsonView lp = ps.get(layer);
                ConfigJson.requireOnly(lp, set("weight", "input"));
                WeightParams w = null;
                if (lp.has("weight")) {
                    JsonView wv = lp.get("weight");
                    ConfigJson.requireOnly(wv, WPARAMS);
                    byte[] c = null;
                    if (wv.optBoolean("codes", false)) {
                        c = codes == null ? null : codes.get(layer);
                        if (c == null) throw wv.error("codes", "the learned codes of '" + layer + "' are not in the codes sidecar file");
                    }
                    w = new WeightParams(qparams(wv), c);
                }
                InputParams in = lp.has("input") ? input(lp.get("input")) : null;
                params.put(layer, new LayerParams(w, in));
            }
        }
        Map<String, JsonNode> ext = new LinkedHashMap<>();
        if (root.has("extensions")) {
            JsonView ev = root.get("extensions");
            for (String k : ev.fieldNames()) ext.put(k, ev.get(k).node());
        }
        TemporalSection temporal = root.has("temporal") ? TemporalSectionCodec.parse(root.get("temporal"), file, embedded) : null;
        return new QuantConfig(id, method, cal, new PointSpec(dw, di), overrides, new CalibratedParams(params), ext, root.source(), temporal);
    }

    private static MethodSettings method(JsonView m) throws JsonException {
        ConfigJson.requireOnly(m, set("preset", "options"));
        String name = m.requireString("preset");
        Preset p;
        try {
            p = Presets.byName(name);
        } catch (IllegalArgumentException e) {
            throw m.error("preset", e.getMessage());
        }
        Map<String, Object> given = new LinkedHashMap<>();
        Map<String, OptionDef> defs = new LinkedHashMap<>();
        for (OptionDef d : p.options()) defs.put(d.name(), d);
        if (m.has("options")) {
            JsonView ov = m.get("options");
            for (String k : ov.fieldNames()) {
                OptionDef d = defs.get(k);
                if (d == null) throw ov.error(k, "unknown option \"" + k + "\" for preset \"" + name + "\"; valid: " + String.join(", ", defs.keySet()));
                JsonView v = ov.get(k);
                Object val = switch (d.type()) {
                    case INT -> v.asInt();
                    case DOUBLE -> v.asDouble();
                    case BOOLEAN -> v.asBoolean();
                    case STRING -> v.asString();
                };
                try {
                    given.put(k, d.coerce(val));
                } catch (IllegalArgumentException e) {
                    throw ov.error(k, e.getMessage());
                }
            }
        }
        try {
            return new MethodSettings(p.name(), PresetOptions.resolve(p, given));
        } catch (IllegalArgumentException e) {
            throw m.error("options", e.getMessage());
        }
    }

    /** A full spec: "off" or an object with format, granularity, range (default minmax) and mode (inputs; default static). */
    static TensorSpec spec(JsonView v, TensorSpec.Role role) throws JsonException {
        if (v.node().isTextual()) {
            if ("off".equals(v.asString())) return TensorSpec.OFF;
            throw v.error("expected \"off\" or an object with format and granularity, got \"" + v.asString() + "\"");
        }
        ConfigJson.requireOnly(v, SPEC);
        NumberFormat f = format(v.get("format"));
        Granularity g = granularity(v.get("granularity"));
        RangeSpec r = v.has("range") ? range(v.get("range")) : RangeSpec.MINMAX;
        CalibrationMode m = v.has("mode") ? mode(v.get("mode")) : CalibrationMode.STATIC;
        TensorSpec s = new TensorSpec(true, f, g, r, m);
        try {
            s.validate(role);
        } catch (IllegalArgumentException e) {
            String msg = e.getMessage();
            int colon = msg.indexOf(':');
            String field = colon > 0 ? msg.substring(0, colon) : null;
            if (field != null && SPEC.contains(field)) throw v.error(field, msg.substring(colon + 1).trim());
            throw v.error(msg);
        }
        return s;
    }

    static SpecPatch patch(JsonView v) throws JsonException {
        if (v.node().isTextual()) {
            if ("off".equals(v.asString())) return SpecPatch.OFF;
            throw v.error("expected \"off\" or an object with any of " + String.join(", ", PATCH) + ", got \"" + v.asString() + "\"");
        }
        ConfigJson.requireOnly(v, PATCH);
        Boolean en = v.has("enabled") ? v.get("enabled").asBoolean() : null;
        NumberFormat f = v.has("format") ? format(v.get("format")) : null;
        Granularity g = v.has("granularity") ? granularity(v.get("granularity")) : null;
        RangeSpec r = v.has("range") ? range(v.get("range")) : null;
        CalibrationMode m = v.has("mode") ? mode(v.get("mode")) : null;
        try {
            return new SpecPatch(en, f, g, r, m);
        } catch (IllegalArgumentException e) {
            throw v.error(e.getMessage());
        }
    }

    static NumberFormat format(JsonView v) throws JsonException {
        String s = v.asString();
        try {
            return NumberFormat.parse(s);
        } catch (IllegalArgumentException e) {
            throw v.error("unknown format \"" + s + "\" (" + e.getMessage() + ")");
        }
    }

    static Granularity granularity(JsonView v) throws JsonException {
        try {
            return Granularity.parse(v.asString());
        } catch (IllegalArgumentException e) {
            throw v.error(e.getMessage());
        }
    }

    static RangeSpec range(JsonView v) throws JsonException {
        try {
            return RangeSpec.parse(v.asString());
        } catch (IllegalArgumentException e) {
            throw v.error(e.getMessage());
        }
    }

    static CalibrationMode mode(JsonView v) throws JsonException {
        try {
            return CalibrationMode.parse(v.asString());
        } catch (IllegalArgumentException e) {
            throw v.error(e.getMessage());
        }
    }

    static QuantParams qparams(JsonView v) throws JsonException {
        float[] sc = ConfigJson.asFloatArray(v.get("scales"));
        if (sc.length == 0) throw v.error("scales", "must not be empty");
        int[] zp = v.has("zero_points") ? v.get("zero_points").asIntArray() : null;
        if (zp != null && zp.length != sc.length) throw v.error("zero_points", zp.length + " zero points for " + sc.length + " scales");
        float ts = v.has("tensor_scale") ? ConfigJson.asFloat(v.get("tensor_scale")) : 1f;
        try {
            return ts != 1f ? QuantParams.withTensorScale(sc, ts) : QuantParams.of(sc, zp);
        } catch (IllegalArgumentException e) {
            throw v.error("scales", e.getMessage());
        }
    }

    private static ActivationParams parts(JsonView v) throws JsonException {
        List<QuantParams> ps = new ArrayList<>();
        for (JsonView p : v.elements()) {
            ConfigJson.requireOnly(p, QPARAMS);
            ps.add(qparams(p));
        }
        if (ps.isEmpty()) throw v.error("needs at least one parameter set");
        return new ActivationParams(ps);
    }

    private static InputParams input(JsonView v) throws JsonException {
        ConfigJson.requireOnly(v, set("shared", "per_timestep"));
        if (v.has("shared") == v.has("per_timestep")) throw v.error("expected exactly one of \"shared\" and \"per_timestep\"");
        if (v.has("shared")) return InputParams.shared(parts(v.get("shared")));
        JsonView pt = v.get("per_timestep");
        Map<Float, ActivationParams> m = new TreeMap<>();
        for (String k : pt.fieldNames()) {
            float t;
            try {
                t = Float.parseFloat(k);
            } catch (NumberFormatException e) {
                throw pt.error(k, "timestep key \"" + k + "\" is not a number");
            }
            if (!Float.isFinite(t)) throw pt.error(k, "timestep key \"" + k + "\" is not finite");
            if (m.put(t, parts(pt.get(k))) != null) throw pt.error(k, "timestep " + k + " appears twice");
        }
        if (m.isEmpty()) throw v.error("per_timestep", "needs at least one timestep");
        return InputParams.perTimestep(m);
    }
}
