package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.SpecPatch;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.SimpleObjectProperty;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The quantization configuration being edited: the method preset it starts from (held by the layer table so that
 * undo covers it) plus the table's edits as per-layer overrides, the baseline method the generation panel compares
 * with, presets applied in one click, and the calibrated configs (a small cache keyed by method + overrides, so that
 * sampling the same configuration twice calibrates once). Calibration itself runs in {@link CalibrationTask} /
 * {@link GenerationTask} on the worker through the engine's {@link CalibrationJob}, exactly as the CLI's
 * {@code calibrate}. Toolkit-free.
 */
public final class QuantViewModel {
    /** Configs kept calibrated. */
    public static final int CACHE_SIZE = 8;

    /**
     * A configuration to calibrate and sample: a method and overrides on its plan.
     * @param label     column name ("Baseline rtn", "Current config")
     * @param key       identity for the calibration cache
     * @param quantizes whether anything is quantized at all (if not, it samples like FP32)
     */
    public record Target(String label, MethodChoice method, List<LayerOverride> overrides, String key, boolean quantizes) {
        public Target {
            overrides = List.copyOf(overrides);
        }
    }

    private final LayerTableViewModel layers;
    private final ReadOnlyObjectWrapper<ModelContext> context = new ReadOnlyObjectWrapper<>(this, "context");
    private final ObjectProperty<MethodChoice> baseline = new SimpleObjectProperty<>(this, "baseline", MethodChoice.DEFAULT);
    /** The last calibrated config of the current table (null until calibrated; cleared by edits). */
    private final ReadOnlyObjectWrapper<QuantConfig> currentConfig = new ReadOnlyObjectWrapper<>(this, "currentConfig");
    private final Map<String, QuantConfig> cache = new LinkedHashMap<>(16, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<String, QuantConfig> e) { return size() > CACHE_SIZE; }
    };
    private Path cacheRoot;
    /** Bits and format family the preset buttons pass (w_bits, a_bits, w_format, a_format), when the preset takes them. */
    private final javafx.beans.property.IntegerProperty wBits = new javafx.beans.property.SimpleIntegerProperty(this, "wBits", 4);
    private final javafx.beans.property.IntegerProperty aBits = new javafx.beans.property.SimpleIntegerProperty(this, "aBits", 8);
    /** "default" (the preset's own), "int" or "fp". */
    private final javafx.beans.property.StringProperty formatFamily = new javafx.beans.property.SimpleStringProperty(this, "formatFamily", "default");
    /** Images of the calibration data (0 = the preset's default); fewer images calibrate faster on a laptop CPU. */
    private final javafx.beans.property.IntegerProperty calibrationImages = new javafx.beans.property.SimpleIntegerProperty(this, "calibrationImages", 0);
    /** Further options per preset, set in the options dialog. */
    private final Map<String, Map<String, Object>> extraOptions = new LinkedHashMap<>();

    public QuantViewModel(LayerTableViewModel layers, Path cacheRoot) {
        this.layers = layers;
        this.cacheRoot = cacheRoot;
        calibrationImages.addListener((o, a, n) -> refreshCurrentConfig());
        layers.revisionProperty().addListener((o, a, b) -> refreshCurrentConfig());
        layers.methodProperty().addListener((o, a, b) -> refreshCurrentConfig());
    }

    public ReadOnlyObjectProperty<ModelContext> contextProperty() { return context.getReadOnlyProperty(); }
    public ModelContext context() { return context.get(); }
    public ObjectProperty<MethodChoice> baselineProperty() { return baseline; }
    /** The calibrated config of the table as it is now, or null when it has not been calibrated. */
    public ReadOnlyObjectProperty<QuantConfig> currentConfigProperty() { return currentConfig.getReadOnlyProperty(); }
    public LayerTableViewModel layers() { return layers; }

    /** Where calibration data is recorded (one folder per model and settings below it). */
    public Path cacheRoot() { return cacheRoot; }
    public void setCacheRoot(Path p) { cacheRoot = p; }

    /** Switches to a model (clears the calibrated configs). The table's rows are set by the caller. */
    public void setContext(ModelContext c) {
        context.set(c);
        cache.clear();
        currentConfig.set(null);
    }

    /** The preset names offered (the engine's registry, in its order). */
    public static List<String> presetNames() { return Presets.names(); }

    // ------------------------------------------------------------------ presets

    public javafx.beans.property.IntegerProperty wBitsProperty() { return wBits; }
    public javafx.beans.property.IntegerProperty aBitsProperty() { return aBits; }
    public javafx.beans.property.StringProperty formatFamilyProperty() { return formatFamily; }
    public javafx.beans.property.IntegerProperty calibrationImagesProperty() { return calibrationImages; }

    /** The options set in the options dialog for a preset (beyond bits and family). */
    public Map<String, Object> extraOptions(String preset) { return Map.copyOf(extraOptions.getOrDefault(preset, Map.of())); }

    /** Sets the further options of a preset (checked against its declarations; throws naming a bad option). */
    public void setExtraOptions(String preset, Map<String, Object> options) {
        Preset p = Presets.byName(preset);
        io.diffquant.engine.quant.preset.PresetOptions.resolve(p, options);
        extraOptions.put(preset, new LinkedHashMap<>(options));
    }

    /**
     * What a preset button applies: the preset with the bar's bits and format family (only the options the preset
     * declares) and the options dialog's further options.
     */
    public MethodChoice choiceFor(String preset) {
        Preset p = Presets.byName(preset);
        java.util.Set<String> declared = new java.util.HashSet<>();
        for (var d : p.options()) declared.add(d.name());
        Map<String, Object> o = new LinkedHashMap<>();
        if (declared.contains("w_bits")) o.put("w_bits", wBits.get());
        if (declared.contains("a_bits")) o.put("a_bits", aBits.get());
        String fam = formatFamily.get();
        if (fam != null && !fam.equals("default")) {
            if (declared.contains("w_format")) o.put("w_format", fam);
            if (declared.contains("a_format")) o.put("a_format", fam);
        }
        o.putAll(extraOptions.getOrDefault(preset, Map.of()));
        return new MethodChoice(preset, o);
    }

    private ModelContext requireContext() {
        ModelContext c = context.get();
        if (c == null) throw new IllegalStateException("no model loaded: open a model folder first");
        return c;
    }

    /** The plan a method gives this model (the preset's defaults and its own overrides). Throws naming a bad option. */
    public QuantPlan planFor(MethodChoice m) {
        ModelContext c = requireContext();
        Preset p = m.presetInstance();
        Preset.Plan plan = p.plan(c.model(), m.resolvedOptions());
        return QuantPlan.resolve(c.model(), plan.defaults(), plan.overrides());
    }

    /** The layer specs a method gives this model. */
    public Map<String, LayerQuantSpec> specsFor(MethodChoice m) { return SpecBridge.specsOf(planFor(m)); }

    /** The layer specs of a method with further overrides after the preset's own (a restored session). */
    public Map<String, LayerQuantSpec> specsFor(MethodChoice m, List<LayerOverride> extra) {
        ModelContext c = requireContext();
        Preset.Plan plan = m.presetInstance().plan(c.model(), m.resolvedOptions());
        List<LayerOverride> all = new java.util.ArrayList<>(plan.overrides());
        all.addAll(extra);
        return SpecBridge.specsOf(QuantPlan.resolve(c.model(), plan.defaults(), all));
    }

    /** An override in the command-line form {@code GLOB=w:F/G/R/M,a:F/G/R/M} ({@link LayerOverride#parse} reads it back). */
    public static String overrideText(LayerOverride o) {
        if (o.weight().isOff() && o.input().isOff()) return o.pattern() + "=off";
        List<String> parts = new java.util.ArrayList<>();
        if (!o.weight().isKeep()) parts.add("w:" + patchFields(o.weight()));
        if (!o.input().isKeep()) parts.add("a:" + patchFields(o.input()));
        return o.pattern() + "=" + String.join(",", parts);
    }

    private static String patchFields(SpecPatch p) {
        if (p.isOff()) return "off";
        if (p.format() == null && p.granularity() == null && p.range() == null && p.mode() == null) return "on";
        return (p.format() == null ? "-" : p.format().id()) + "/" + (p.granularity() == null ? "-" : p.granularity().id()) + "/"
                + (p.range() == null ? "-" : p.range().id()) + "/" + (p.mode() == null ? "-" : p.mode().id());
    }

    /** Applies a preset to the whole table in one undoable edit (the method becomes the config's base). Returns rows changed. */
    public int applyPreset(MethodChoice m) {
        return layers.replaceSpecs(specsFor(m), "preset " + m.label(), m);
    }

    /** The diff a preset would make (shown before applying when asked). */
    public SpecDiff previewPreset(MethodChoice m) {
        return SpecDiff.of(layers.rows(), specsFor(m), layers.method(), m);
    }

    // ------------------------------------------------------------------ targets

    /** The configuration of the table: its method plus the table's differences from the method's plan as overrides. */
    public Target currentTarget() {
        MethodChoice m = layers.method();
        List<LayerOverride> ov = SpecBridge.overridesFrom(planFor(m), layers.specs());
        return new Target("Current config", m, ov, key(m, ov), layers.quantizedLayersProperty().get() > 0);
    }

    /** The baseline: the baseline method as the preset makes it, without the table's edits. */
    public Target baselineTarget() {
        MethodChoice m = baseline.get();
        QuantPlan p = planFor(m);
        boolean q = p.specs().values().stream().anyMatch(s -> s.enabled());
        return new Target("Baseline " + m.label(), m, List.of(), key(m, List.of()), q);
    }

    /** The engine request that calibrates a target (the preset's default calibration data, recorded under the cache root). */
    public CalibrationJob.Request request(Target t) {
        ModelContext c = requireContext();
        CalibrationSettings s = calibrationSettings(t.method());
        return new CalibrationJob.Request(c.model(), c.identity(), t.method().preset(), t.method().options(), t.overrides(), s,
                calibrationDir(s), null);
    }

    /**
     * The calibration data settings of a method: the preset's defaults, with fewer images when
     * {@link #calibrationImagesProperty()} asks for it (the sampling steps, hence the timesteps, stay the preset's).
     */
    public CalibrationSettings calibrationSettings(MethodChoice m) {
        CalibrationSettings s = m.presetInstance().defaultCalibration();
        int n = calibrationImages.get();
        if (n > 0 && n < s.samples()) s = s.withSampling(s.sampler(), s.steps(), n, Math.min(s.batch(), n), s.seed());
        return s;
    }

    /** {@code <cache root>/<weights hash>/<settings hash>}: one recording per model and calibration settings. */
    public Path calibrationDir(CalibrationSettings s) {
        ModelContext c = requireContext();
        Path root = cacheRoot != null ? cacheRoot : Path.of(System.getProperty("java.io.tmpdir"), "diffquant-calibration");
        String w = c.identity().weightsSha256();
        return root.resolve(w == null ? "model" : w.substring(0, Math.min(16, w.length()))).resolve(sha(s.toJson().toString()).substring(0, 16));
    }

    /** The calibrated config of a target, or null. */
    public QuantConfig cached(Target t) { return cache.get(t.key()); }

    /** Remembers a calibrated config (call on the FX thread). */
    public void remember(Target t, QuantConfig c) {
        cache.put(t.key(), c);
        refreshCurrentConfig();
    }

    private void refreshCurrentConfig() {
        if (context.get() == null) {
            currentConfig.set(null);
            return;
        }
        try {
            currentConfig.set(cache.get(currentTarget().key()));
        } catch (RuntimeException e) {
            currentConfig.set(null);
        }
    }

    /** The calibration-cache key of a method with overrides (the calibration data settings are part of it). */
    public String key(MethodChoice m, List<LayerOverride> ov) {
        StringBuilder sb = new StringBuilder(m.preset()).append(' ').append(new java.util.TreeMap<>(m.options()));
        if (calibrationImages.get() > 0) sb.append(" calibration images ").append(calibrationImages.get());
        for (LayerOverride o : ov) sb.append('\n').append(o.pattern()).append(" w:").append(patch(o.weight())).append(" a:").append(patch(o.input()));
        return sb.toString();
    }

    private static String patch(SpecPatch p) {
        if (p.isKeep()) return "keep";
        if (p.isOff()) return "off";
        return (p.format() == null ? "-" : p.format().id()) + "/" + (p.granularity() == null ? "-" : p.granularity().id()) + "/"
                + (p.range() == null ? "-" : p.range().id()) + "/" + (p.mode() == null ? "-" : p.mode().id());
    }

    private static String sha(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    // ------------------------------------------------------------------ import

    /**
     * A config read from a file and resolved for this model: the specs it gives every layer, the diff against the table
     * and, when the config was made for other weights, what differs (it is applied anyway; its parameters are then
     * recalibrated).
     */
    public record ImportResult(Path file, QuantConfig config, MethodChoice method, Map<String, LayerQuantSpec> specs, SpecDiff diff,
                               String identityMismatch) {}

    /** Resolves a config for the loaded model (pure computation on a read config; the file is read by the caller's task). */
    public ImportResult resolveImport(Path file, QuantConfig config) throws io.diffquant.engine.io.JsonException {
        ModelContext c = requireContext();
        String mismatch = config.model().mismatch(c.identity());
        QuantConfigs.Bound b = QuantConfigs.bind(config, c.model(), true);
        Map<String, LayerQuantSpec> specs = SpecBridge.specsOf(b.plan());
        MethodChoice m = config.method() == null ? layers.method()
                : new MethodChoice(config.method().preset(), config.method().options().values());
        if (config.method() != null && sameMethod(layers.method(), config.method())) m = layers.method();   // keep the short form
        return new ImportResult(file, config, m, specs, SpecDiff.of(layers.rows(), specs, layers.method(), m), mismatch);
    }

    private static boolean sameMethod(MethodChoice m, io.diffquant.engine.quant.config.MethodSettings s) {
        try {
            return m.preset().equals(s.preset()) && m.resolvedOptions().equals(s.options());
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * Applies an import as one undoable edit. When the config carries calibrated parameters for this very model, they
     * become the current config's calibration (no recalibration needed).
     */
    public int applyImport(ImportResult r) {
        int n = layers.replaceSpecs(r.specs(), "import " + r.file().getFileName(), r.method());
        if (r.identityMismatch() == null && !r.config().params().layers().isEmpty()) {
            try {
                remember(currentTarget(), r.config());
            } catch (RuntimeException ignored) {
                // the imported specs cannot be expressed on the method's plan: it will be recalibrated
            }
        }
        return n;
    }
}
