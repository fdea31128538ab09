package io.diffquant.engine.quant.config;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.io.TensorInfo;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * JSON form of {@link TemporalSection} (docs/config-format.md, "temporal"): the switches, timesteps, labels, features
 * and selection map inline; the cached features' codes and parameters in a sidecar safetensors file
 * {@code <config name>.temporal.safetensors} (tensors {@code <feature>.codes} U8 [T, Y, width], {@code <feature>.scales}
 * F32 [groups], {@code <feature>.zero_points} I32 [groups] when the format has zero points, {@code <feature>.tensor_scale}
 * F32 [1] when not 1) whose sha256 the JSON records. Errors name the file and JSON path.
 */
final class TemporalSectionCodec {
    private TemporalSectionCodec() {}

    static final Set<String> FIELDS = new LinkedHashSet<>(List.of("version", "tiar", "fsc", "fsc_scope", "cache", "selection",
            "timesteps", "labels", "features", "cached_features", "selection_map"));
    static final Set<String> FEATURE = new LinkedHashSet<>(List.of("name", "layer", "width"));
    static final Set<String> CACHED = new LinkedHashSet<>(List.of("format", "granularity", "range", "granularities", "bytes", "file", "embedded"));

    static String sidecarName(Path file) {
        String n = file.getFileName().toString();
        if (n.endsWith(".json")) n = n.substring(0, n.length() - 5);
        return n + ".temporal.safetensors";
    }

    /** Writes the sidecar beside {@code file}; returns the JSON reference, or null when there is no cache. */
    static ObjectNode writeSidecar(TemporalSection t, Path file) throws IOException {
        if (t == null || t.cached() == null) return null;
        String name = sidecarName(file);
        SafetensorsWriter w = new SafetensorsWriter();
        addTensors(t, w, "");
        Path side = file.toAbsolutePath().resolveSibling(name);
        w.write(side);
        ObjectNode ref = ConfigJson.object();
        ref.put("path", name);
        ref.put("sha256", ConfigJson.sha256(side));
        return ref;
    }

    /** Adds the cached features' tensors (sidecar names, each prefixed with {@code prefix}) to a writer; nothing when there is no cache. */
    static void addTensors(TemporalSection t, SafetensorsWriter w, String prefix) {
        if (t == null || t.cached() == null) return;
        for (int i = 0; i < t.features().size(); i++) {
            String f = prefix + t.features().get(i).name();
            QuantizedTensor q = t.cached().tensors().get(i);
            int[] s = q.shape();
            w.addRaw(f + ".codes", DType.U8, new long[] {s[0], s[1], s[2]}, q.codes());
            QuantParams p = q.params();
            w.add(f + ".scales", Tensor.of(p.scales(), p.groups()));
            if (p.hasZeroPoints()) w.addInts(f + ".zero_points", p.zeroPoints(), p.groups());
            if (Float.floatToIntBits(p.tensorScale()) != Float.floatToIntBits(1f)) w.add(f + ".tensor_scale", Tensor.of(new float[] {p.tensorScale()}, 1));
        }
    }

    /**
     * The JSON of a section.
     * @param fileRef        the sidecar reference of the cached features (a config file), or null
     * @param embeddedPrefix the name prefix of the cached features' tensors in the safetensors file that embeds this
     *                       config (a quantized checkpoint), or null
     */
    static ObjectNode tree(TemporalSection t, ObjectNode fileRef, String embeddedPrefix) {
        ObjectNode o = ConfigJson.object();
        o.put("version", TemporalSection.VERSION);
        o.put("tiar", t.tiar());
        o.put("fsc", t.fsc());
        o.put("fsc_scope", t.fscScope());
        o.put("cache", t.cache());
        o.put("selection", t.selection());
        o.set("timesteps", ConfigJson.floats(t.timesteps()));
        if (t.labels() != null) o.set("labels", ConfigJson.ints(t.labels()));
        ArrayNode fs = o.putArray("features");
        for (TemporalSection.FeatureRef f : t.features()) fs.addObject().put("name", f.name()).put("layer", f.layer()).put("width", f.width());
        if (t.cached() != null) {
            TemporalSection.CachedFeatures c = t.cached();
            ObjectNode co = o.putObject("cached_features");
            co.put("format", c.format().id());
            co.put("granularity", c.granularity());
            co.put("range", c.range());
            ArrayNode gs = co.putArray("granularities");
            for (QuantizedTensor q : c.tensors()) gs.add(q.granularity().id());
            co.put("bytes", c.bytes());
            if (fileRef != null) co.set("file", fileRef);
            else if (embeddedPrefix != null) co.put("embedded", embeddedPrefix);
        }
        boolean[][] map = t.selectionMap();
        if (map != null) {
            ObjectNode sm = o.putObject("selection_map");
            for (int i = 0; i < map.length; i++) {
                ArrayNode a = sm.putArray(t.features().get(i).name());
                for (boolean b : map[i]) a.add(b ? "cache" : "tib");
            }
        }
        return o;
    }

    /**
     * Reads the section.
     * @param configFile the config's file (for the sidecar), or null when parsing text (then a sidecar cache is an error)
     * @param embedded   the safetensors file that embeds the config text and holds its cached features (a quantized
     *                   checkpoint), or null
     */
    static TemporalSection parse(JsonView v, Path configFile, SafetensorsReader embedded) throws IOException {
        ConfigJson.requireOnly(v, FIELDS);
        int version = v.requireInt("version");
        if (version != TemporalSection.VERSION) throw v.error("version", "unsupported temporal section version " + version
                + " (this build reads version " + TemporalSection.VERSION + ")");
        boolean tiar = v.requireBoolean("tiar"), fsc = v.requireBoolean("fsc"), cache = v.requireBoolean("cache"),
                selection = v.requireBoolean("selection");
        String scope = v.requireString("fsc_scope");
        if (!"tib".equals(scope) && !"all".equals(scope)) throw v.error("fsc_scope", "expected \"tib\" or \"all\", got \"" + scope + "\"");
        float[] ts = v.has("timesteps") ? ConfigJson.asFloatArray(v.get("timesteps")) : new float[0];
        Set<Float> seen = new HashSet<>();
        for (int i = 0; i < ts.length; i++) {
            if (!Float.isFinite(ts[i])) throw new JsonException(v.source(), v.get("timesteps").path() + "[" + i + "]", "timestep " + ts[i] + " is not finite");
            if (!seen.add(ts[i] == 0f ? 0f : ts[i])) throw new JsonException(v.source(), v.get("timesteps").path() + "[" + i + "]",
                    "timestep " + ts[i] + " appears twice");
        }
        int[] labels = v.has("labels") ? v.get("labels").asIntArray() : null;
        if (labels != null) {
            Set<Integer> ls = new HashSet<>();
            for (int i = 0; i < labels.length; i++) {
                if (labels[i] < 0) throw new JsonException(v.source(), v.get("labels").path() + "[" + i + "]", "labels must be >= 0, got " + labels[i]);
                if (!ls.add(labels[i])) throw new JsonException(v.source(), v.get("labels").path() + "[" + i + "]", "label " + labels[i] + " appears twice");
            }
        }
        List<TemporalSection.FeatureRef> features = new ArrayList<>();
        Set<String> names = new HashSet<>();
        if (v.has("features")) {
            for (JsonView f : v.get("features").elements()) {
                ConfigJson.requireOnly(f, FEATURE);
                String name = f.requireString("name");
                if (name.isBlank()) throw f.error("name", "must not be empty");
                if (!names.add(name)) throw f.error("name", "feature \"" + name + "\" appears twice");
                String layer = f.requireString("layer");
                if (layer.isBlank()) throw f.error("layer", "must not be empty");
                int width = f.requireInt("width");
                if (width < 1) throw f.error("width", "must be >= 1, got " + width);
                features.add(new TemporalSection.FeatureRef(name, layer, width));
            }
        }
        TemporalSection.CachedFeatures cached = v.has("cached_features") ? cached(v.get("cached_features"), features, ts, labels, configFile, embedded) : null;
        if (cache && cached == null) throw v.error("cached_features", "the cache switch is on but the cached features are missing");
        boolean[][] map = null;
        if (v.has("selection_map")) {
            JsonView sm = v.get("selection_map");
            if (cached == null) throw v.error("selection_map", "a selection map needs cached_features");
            ConfigJson.requireOnly(sm, new LinkedHashSet<>(names));
            map = new boolean[features.size()][];
            for (int i = 0; i < features.size(); i++) {
                String name = features.get(i).name();
                if (!sm.has(name)) throw sm.error(name, "the selection map has no entry for feature \"" + name + "\"");
                JsonView row = sm.get(name);
                List<String> vals = row.asStringList();
                if (vals.size() != ts.length) throw sm.error(name, vals.size() + " entries for " + ts.length + " timesteps");
                map[i] = new boolean[vals.size()];
                for (int k = 0; k < vals.size(); k++) {
                    String s = vals.get(k);
                    if (!"cache".equals(s) && !"tib".equals(s)) throw new JsonException(v.source(), row.path() + "[" + k + "]",
                            "expected \"cache\" or \"tib\", got \"" + s + "\"");
                    map[i][k] = "cache".equals(s);
                }
            }
        }
        if (selection && map == null) throw v.error("selection_map", "the selection switch is on but the selection map is missing");
        try {
            return new TemporalSection(tiar, fsc, scope, cache, selection, ts, labels, features, cached, map);
        } catch (IllegalArgumentException e) {
            throw v.error(e.getMessage());
        }
    }

    private static TemporalSection.CachedFeatures cached(JsonView c, List<TemporalSection.FeatureRef> features, float[] ts, int[] labels,
                                                         Path configFile, SafetensorsReader embedded) throws IOException {
        ConfigJson.requireOnly(c, CACHED);
        NumberFormat format = QuantConfigCodec.format(c.get("format"));
        String gran = c.requireString("granularity");
        if (!"tensor".equals(gran) && !"chunk".equals(gran)) throw c.error("granularity", "expected \"tensor\" or \"chunk\", got \"" + gran + "\"");
        String range = c.requireString("range");
        if (range.isBlank()) throw c.error("range", "must not be empty");
        List<String> grans = c.requireStringList("granularities");
        if (grans.size() != features.size()) throw c.error("granularities", grans.size() + " entries for " + features.size() + " features");
        List<Granularity> gs = new ArrayList<>();
        for (int i = 0; i < grans.size(); i++) {
            try {
                Granularity g = Granularity.parse(grans.get(i));
                format.checkGranularity(g);
                gs.add(g);
            } catch (IllegalArgumentException e) {
                throw new JsonException(c.source(), c.get("granularities").path() + "[" + i + "]", e.getMessage());
            }
        }
        List<QuantizedTensor> tensors;
        if (c.has("embedded")) {
            if (c.has("file")) throw c.error("embedded", "give either a sidecar 'file' or 'embedded' tensors, not both");
            String prefix = c.requireString("embedded");
            if (embedded == null) throw c.error("embedded", "the cached features are stored in the quantized checkpoint that embeds this "
                    + "config; load the checkpoint (QuantizedCheckpoint.load / readConfig)");
            tensors = readTensors(embedded, prefix, c, "embedded", format, gs, features, ts, labels);
        } else {
            if (!c.has("file")) throw c.error("file", "the cached features live in a sidecar file; read the config from its file");
            if (configFile == null) throw c.error("file", "this config references a temporal sidecar file; read it from its file");
            JsonView ref = c.get("file");
            ConfigJson.requireOnly(ref, new LinkedHashSet<>(List.of("path", "sha256")));
            String name = ref.requireString("path");
            if (name.contains("/") || name.contains("\\")) throw ref.error("path", "must be a file name beside the config, got \"" + name + "\"");
            Path side = configFile.toAbsolutePath().resolveSibling(name);
            if (!Files.isRegularFile(side)) throw ref.error("path", "temporal cache file " + side + " is missing");
            String sha = ConfigJson.sha256(side);
            if (!sha.equals(ref.requireString("sha256"))) throw ref.error("sha256", "temporal cache file " + side + " has sha256 " + sha
                    + ", the config expects " + ref.requireString("sha256") + " (the file was changed or belongs to another config)");
            try (SafetensorsReader r = SafetensorsReader.open(side)) {
                tensors = readTensors(r, "", ref, "path", format, gs, features, ts, labels);
            }
        }
        try {
            return new TemporalSection.CachedFeatures(format, gran, range, tensors);
        } catch (IllegalArgumentException e) {
            throw c.error(e.getMessage());
        }
    }

    /**
     * The cached features' tensors ({@code prefix + <feature>.codes}, ...) from a safetensors file; errors are reported at
     * {@code at.field} and name the file and feature.
     */
    private static List<QuantizedTensor> readTensors(SafetensorsReader r, String prefix, JsonView at, String field, NumberFormat format,
                                                     List<Granularity> grans, List<TemporalSection.FeatureRef> features, float[] ts,
                                                     int[] labels) throws IOException {
        int ny = labels == null ? 1 : labels.length;
        List<QuantizedTensor> tensors = new ArrayList<>();
        for (int i = 0; i < features.size(); i++) {
            TemporalSection.FeatureRef f = features.get(i);
            String n = prefix + f.name();
            String where = r.file() + ": feature '" + f.name() + "'";
            Granularity g = grans.get(i);
            int[] shape = {ts.length, ny, f.width()};
            tensor(r, n + ".codes", DType.U8, shape, at, field, where);
            byte[] codes = r.readBytes(n + ".codes");
            int groups = new io.diffquant.engine.quant.format.GroupView(g, Layout.ACTIVATION, shape).groups();
            tensor(r, n + ".scales", DType.F32, new int[] {groups}, at, field, where);
            float[] scales = r.readFloat(n + ".scales").data();
            int[] zp = null;
            if (r.contains(n + ".zero_points")) {
                tensor(r, n + ".zero_points", DType.I32, new int[] {groups}, at, field, where);
                zp = r.readInts(n + ".zero_points");
            }
            float tsc = 1f;
            if (r.contains(n + ".tensor_scale")) {
                tensor(r, n + ".tensor_scale", DType.F32, new int[] {1}, at, field, where);
                tsc = r.readFloat(n + ".tensor_scale").data()[0];
            }
            try {
                QuantParams p = tsc != 1f ? QuantParams.withTensorScale(scales, tsc) : QuantParams.of(scales, zp);
                tensors.add(new QuantizedTensor(format, g, Layout.ACTIVATION, shape, codes, p));
            } catch (IllegalArgumentException e) {
                throw at.error(field, where + ": " + e.getMessage());
            }
        }
        return tensors;
    }

    /** Checks a sidecar tensor's dtype and shape. */
    private static void tensor(SafetensorsReader r, String name, DType dtype, int[] shape, JsonView ref, String field, String where) throws IOException {
        if (!r.contains(name)) throw ref.error(field, where + ": tensor '" + name + "' is missing");
        TensorInfo info = r.info(name);
        if (info.dtype() != dtype) throw ref.error(field, where + ": tensor '" + name + "' must be " + dtype + ", got " + info.dtype());
        long[] s = info.shape();
        long[] want = new long[shape.length];
        for (int i = 0; i < shape.length; i++) want[i] = shape[i];
        if (!Arrays.equals(s, want)) throw ref.error(field, where + ": tensor '" + name + "' has shape " + Arrays.toString(s)
                + ", expected " + Arrays.toString(want));
    }
}
