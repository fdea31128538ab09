package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.model.DiffusionModel;
import javafx.beans.binding.Bindings;
import javafx.beans.binding.ObjectBinding;
import javafx.beans.property.BooleanProperty;
import javafx.beans.property.DoubleProperty;
import javafx.beans.property.IntegerProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.ReadOnlyBooleanProperty;
import javafx.beans.property.ReadOnlyBooleanWrapper;
import javafx.beans.property.ReadOnlyIntegerProperty;
import javafx.beans.property.ReadOnlyIntegerWrapper;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.SimpleBooleanProperty;
import javafx.beans.property.SimpleDoubleProperty;
import javafx.beans.property.SimpleIntegerProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;

import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;

/**
 * State and commands of the generation panel: seed, number of images, class labels (class-conditional models),
 * DDIM steps and CFG scale (DiT sample.py's knobs), the FP32, baseline and current-config runs from the same noise and
 * labels with their frames per step and a step scrubber shared by all columns, the difference heatmap |config − FP32|
 * per frame, the metrics table (FID-FMNIST, PSNR, SSIM vs FP32) and the compute backend.
 */
public final class GenerationViewModel {
    public static final int MAX_IMAGES = 64;
    public static final int MAX_STEPS = 1000;

    private final ReadOnlyObjectWrapper<DiffusionModel> model = new ReadOnlyObjectWrapper<>(this, "model");
    private final ReadOnlyBooleanWrapper classConditional = new ReadOnlyBooleanWrapper(this, "classConditional");
    private final ReadOnlyIntegerWrapper numClasses = new ReadOnlyIntegerWrapper(this, "numClasses");
    private final IntegerProperty seed = new SimpleIntegerProperty(this, "seed", 0);
    private final IntegerProperty imageCount = new SimpleIntegerProperty(this, "imageCount", 8);
    /** Comma/space separated class labels; "" = labels 0, 1, 2 ... cycling through the classes. */
    private final StringProperty labels = new SimpleStringProperty(this, "labels", "");
    private final IntegerProperty steps = new SimpleIntegerProperty(this, "steps", 25);
    private final DoubleProperty cfgScale = new SimpleDoubleProperty(this, "cfgScale", 1.0);
    private final DoubleProperty eta = new SimpleDoubleProperty(this, "eta", 0.0);
    private final ObjectProperty<GenerationResult> fpResult = new SimpleObjectProperty<>(this, "fpResult");
    private final ObjectProperty<GenerationResult> baselineResult = new SimpleObjectProperty<>(this, "baselineResult");
    private final ObjectProperty<GenerationResult> currentResult = new SimpleObjectProperty<>(this, "currentResult");
    private final ObjectProperty<GenerationOutcome> outcome = new SimpleObjectProperty<>(this, "outcome");
    /** Sample the baseline column (the baseline method as its preset makes it). */
    private final BooleanProperty baselineEnabled = new SimpleBooleanProperty(this, "baselineEnabled", true);
    /** Sample the current-config column (the layer table). */
    private final BooleanProperty currentEnabled = new SimpleBooleanProperty(this, "currentEnabled", true);
    /** The heatmap shows |current − FP32| (true) or |baseline − FP32| (false). */
    private final BooleanProperty heatmapOfCurrent = new SimpleBooleanProperty(this, "heatmapOfCurrent", true);
    /** The execution backend id (the engine's ExecutionBackends: jvm, cpu-int8, tornado when installed). */
    private final StringProperty backend = new SimpleStringProperty(this, "backend", io.diffquant.engine.backend.ExecutionBackend.JVM);
    private final ObservableList<GenerationOutcome.MetricsRow> metrics = FXCollections.observableArrayList();
    private final ObservableList<String> notes = FXCollections.observableArrayList();
    /** The frame shown (0 = the noisiest kept step); clamped to the frames of the FP run. */
    private final IntegerProperty selectedFrame = new SimpleIntegerProperty(this, "selectedFrame", 0);
    /** true: show x̂_0 (predicted clean image) of the selected step; false: x_t after it. */
    private final BooleanProperty showPredX0 = new SimpleBooleanProperty(this, "showPredX0", true);
    /** Follow the newest frame while sampling (the scrubber jumps to the end). */
    private final BooleanProperty followLatest = new SimpleBooleanProperty(this, "followLatest", true);
    private final ObjectBinding<BufferedImage> fpFrame;
    private final ObjectBinding<BufferedImage> baselineFrame;
    private final ObjectBinding<BufferedImage> currentFrame;
    private final ObjectBinding<BufferedImage> heatmapFrame;
    private final javafx.beans.binding.DoubleBinding heatmapMax;

    public GenerationViewModel() {
        fpFrame = frameOf(fpResult);
        baselineFrame = frameOf(baselineResult);
        currentFrame = frameOf(currentResult);
        heatmapFrame = Bindings.createObjectBinding(() -> {
            GenerationOutcome.Heatmap h = heatmap();
            return h == null ? null : h.grid(selectedFrame.get(), showPredX0.get());
        }, outcome, heatmapOfCurrent, selectedFrame, showPredX0);
        heatmapMax = Bindings.createDoubleBinding(() -> {
            GenerationOutcome.Heatmap h = heatmap();
            return h == null ? Double.NaN : h.max(selectedFrame.get(), showPredX0.get());
        }, outcome, heatmapOfCurrent, selectedFrame, showPredX0);
        outcome.addListener((o, a, v) -> distribute(v));
        fpResult.addListener((o, a, r) -> {
            if (r != null && followLatest.get() && r.frames() > 0) selectedFrame.set(r.frames() - 1);
        });
    }

    private ObjectBinding<BufferedImage> frameOf(ObjectProperty<GenerationResult> result) {
        return Bindings.createObjectBinding(() -> frame(result.get(), selectedFrame.get(), showPredX0.get()),
                result, selectedFrame, showPredX0);
    }

    /** The grid of a result at a frame (clamped to its frames), or null. */
    public static BufferedImage frame(GenerationResult r, int frame, boolean predX0) {
        if (r == null || r.frames() == 0) return null;
        int k = Math.max(0, Math.min(frame, r.frames() - 1));
        return (predX0 ? r.predX0Grids() : r.xtGrids()).get(k);
    }

    // ------------------------------------------------------------------ model

    public void setModel(DiffusionModel m) {
        model.set(m);
        classConditional.set(m != null && m.numClasses() > 0);
        numClasses.set(m == null ? 0 : m.numClasses());
        outcome.set(null);
        fpResult.set(null);
        baselineResult.set(null);
        currentResult.set(null);
        selectedFrame.set(0);
        if (m != null && m.numClasses() > 0 && cfgScale.get() == 1.0) cfgScale.set(1.5);
    }

    public ReadOnlyObjectProperty<DiffusionModel> modelProperty() { return model.getReadOnlyProperty(); }
    public ReadOnlyBooleanProperty classConditionalProperty() { return classConditional.getReadOnlyProperty(); }
    public ReadOnlyIntegerProperty numClassesProperty() { return numClasses.getReadOnlyProperty(); }

    // ------------------------------------------------------------------ parameters

    public IntegerProperty seedProperty() { return seed; }
    public IntegerProperty imageCountProperty() { return imageCount; }
    public StringProperty labelsProperty() { return labels; }
    public IntegerProperty stepsProperty() { return steps; }
    public DoubleProperty cfgScaleProperty() { return cfgScale; }
    public DoubleProperty etaProperty() { return eta; }

    /**
     * Labels for n images: "" cycles 0, 1, ..., numClasses-1; one number repeats it; a list (commas or spaces) is
     * repeated cyclically. Every label must be in [0, numClasses). Errors name the field and the bad entry.
     */
    public static int[] parseLabels(String text, int n, int numClasses) {
        if (numClasses <= 0) throw new IllegalArgumentException("labels: the model is unconditional (no classes)");
        List<Integer> given = new ArrayList<>();
        String t = text == null ? "" : text.trim();
        if (!t.isEmpty()) {
            for (String part : t.split("[,\\s]+")) {
                if (part.isEmpty()) continue;
                int v;
                try {
                    v = Integer.parseInt(part);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("labels: '" + part + "' is not a class number (expected integers in 0.."
                            + (numClasses - 1) + ")");
                }
                if (v < 0 || v >= numClasses) throw new IllegalArgumentException("labels: class " + v
                        + " is out of range; this model has classes 0.." + (numClasses - 1));
                given.add(v);
            }
        }
        int[] y = new int[n];
        for (int i = 0; i < n; i++) y[i] = given.isEmpty() ? i % numClasses : given.get(i % given.size());
        return y;
    }

    /**
     * The FP32 sampling request of the current parameters: DDIM with {@code steps} respaced steps ("ddim&lt;steps&gt;"),
     * seed, labels and classifier-free guidance when the scale differs from 1 (class-conditional models only).
     */
    public SampleRequest buildRequest() {
        DiffusionModel m = model.get();
        if (m == null) throw new IllegalStateException("no model loaded: open a model folder first");
        int n = imageCount.get();
        if (n < 1 || n > MAX_IMAGES) throw new IllegalArgumentException("images: " + n + " is out of range 1.." + MAX_IMAGES);
        int k = steps.get();
        if (k < 1 || k > MAX_STEPS) throw new IllegalArgumentException("steps: " + k + " is out of range 1.." + MAX_STEPS);
        double cfg = cfgScale.get();
        if (!(cfg >= 1.0) || cfg > 50) throw new IllegalArgumentException("cfg scale: " + cfg + " is out of range 1..50");
        double e = eta.get();
        if (!(e >= 0 && e <= 1)) throw new IllegalArgumentException("eta: " + e + " is out of range 0..1");
        SampleRequest.Builder b = SampleRequest.forModel(m, n).seed(seed.get()).respacing("ddim" + k).ddim(e);
        if (m.numClasses() > 0) {
            b.labels(parseLabels(labels.get(), n, m.numClasses()));
            if (cfg != 1.0) b.cfg(cfg);
        }
        return b.build();
    }

    /** A task sampling the FP32 model only; its frames go to {@link #fpResultProperty()} live. */
    public SamplingTask createFpTask() {
        SamplingTask task = new SamplingTask(buildRequest(), "FP32");
        outcome.set(null);
        fpResult.set(null);
        selectedFrame.set(0);
        task.valueProperty().addListener((o, a, v) -> { if (v != null) fpResult.set(v); });
        return task;
    }

    /**
     * The side-by-side run of the current settings: FP32, and (when enabled) the baseline and the current configuration
     * of {@code quant}, calibrating those that are not calibrated yet; the outcome goes to {@link #outcomeProperty()}
     * live and the calibrated configs are remembered in {@code quant} when the task succeeds.
     * @param metrics loads the FID-FMNIST feature network, or null when the model is not a Fashion-MNIST model
     */
    public GenerationTask createTask(QuantViewModel quant, java.util.concurrent.Callable<io.diffquant.engine.metrics.FmnistMetrics> metrics) {
        SampleRequest req = buildRequest();
        GenerationRun.Column b = null, c = null;
        if (baselineEnabled.get()) {
            QuantViewModel.Target t = quant.baselineTarget();
            b = new GenerationRun.Column(t, quant.request(t), quant.cached(t));
        }
        if (currentEnabled.get()) {
            QuantViewModel.Target t = quant.currentTarget();
            c = new GenerationRun.Column(t, quant.request(t), quant.cached(t));
        }
        GenerationRun run = new GenerationRun(model.get(), req, b, c, metrics, backend.get());
        GenerationRun.Column fb = b, fc = c;
        GenerationTask task = new GenerationTask(run, "Generating " + req.batch() + " images side by side");
        outcome.set(null);
        fpResult.set(null);
        baselineResult.set(null);
        currentResult.set(null);
        selectedFrame.set(0);
        task.valueProperty().addListener((o, a, v) -> { if (v != null) outcome.set(v); });
        task.setOnSucceeded(e -> {
            GenerationOutcome v = task.getValue();
            if (v == null) return;
            outcome.set(v);
            if (fb != null && v.baselineConfig() != null) quant.remember(fb.target(), v.baselineConfig());
            if (fc != null && v.currentConfig() != null) quant.remember(fc.target(), v.currentConfig());
        });
        return task;
    }

    /** The generation panel's plots for an export, built from the runs now: x̂_0 change per step; PSNR/SSIM per column. */
    public java.util.List<Exporter.Plot> plots() {
        java.util.List<Exporter.Plot> out = new java.util.ArrayList<>();
        var series = io.diffquant.app.gui.charts.StudioCharts.changeSeries(java.util.Arrays.asList(fpResult.get(), baselineResult.get(), currentResult.get()));
        if (!series.isEmpty()) out.add(new Exporter.Plot("predx0-change", "x̂₀ change per denoising step", () -> {
            var c = io.diffquant.app.gui.charts.StudioCharts.lines("x̂₀ change per denoising step", "step", "RMS change of x̂₀", false);
            io.diffquant.app.gui.charts.StudioCharts.setSeries(c, series);
            return c;
        }));
        java.util.List<GenerationOutcome.MetricsRow> rows = java.util.List.copyOf(metrics).stream().filter(r -> Double.isFinite(r.psnr())).toList();
        if (!rows.isEmpty()) {
            java.util.List<String> names = rows.stream().map(GenerationOutcome.MetricsRow::column).toList();
            double[] psnr = rows.stream().mapToDouble(GenerationOutcome.MetricsRow::psnr).toArray();
            out.add(new Exporter.Plot("psnr", "PSNR vs FP32 per column", () -> io.diffquant.app.gui.charts.StudioCharts.bars(
                    "PSNR vs FP32", "column", "PSNR [dB]", names, psnr, false)));
        }
        return out;
    }

    private void distribute(GenerationOutcome v) {
        if (v == null) {
            metrics.clear();
            notes.clear();
            return;
        }
        fpResult.set(v.fp());
        baselineResult.set(v.baseline());
        currentResult.set(v.current());
        metrics.setAll(v.metrics());
        notes.setAll(v.notes());
    }

    private GenerationOutcome.Heatmap heatmap() {
        GenerationOutcome o = outcome.get();
        if (o == null) return null;
        return heatmapOfCurrent.get() ? (o.currentHeatmap() != null ? o.currentHeatmap() : o.baselineHeatmap())
                : (o.baselineHeatmap() != null ? o.baselineHeatmap() : o.currentHeatmap());
    }

    /**
     * The execution backends offered (the engine's {@code ExecutionBackends}: known and installed ids) with one line each:
     * the backend's description, or why it is not available here (sampling then falls back to jvm and says so).
     */
    public static java.util.Map<String, String> backendChoices() {
        java.util.Map<String, String> out = new java.util.LinkedHashMap<>();
        var installed = io.diffquant.engine.backend.ExecutionBackends.installed();
        for (String id : io.diffquant.engine.backend.ExecutionBackends.ids()) {
            var b = installed.get(id);
            String why;
            try {
                why = b == null ? "not installed" : b.unavailableReason();
            } catch (RuntimeException | LinkageError e) {
                why = "its availability check failed";
            }
            out.put(id, why == null ? b.description() : "not available here (" + why + "): falls back to jvm");
        }
        return out;
    }

    // ------------------------------------------------------------------ results and scrubbing

    public ObjectProperty<GenerationResult> fpResultProperty() { return fpResult; }
    /** The baseline run (the baseline method's preset). */
    public ObjectProperty<GenerationResult> baselineResultProperty() { return baselineResult; }
    /** The run of the configuration being edited (the layer table). */
    public ObjectProperty<GenerationResult> currentResultProperty() { return currentResult; }
    public IntegerProperty selectedFrameProperty() { return selectedFrame; }
    public BooleanProperty showPredX0Property() { return showPredX0; }
    public BooleanProperty followLatestProperty() { return followLatest; }
    /** The FP32 grid at the selected frame (null before the first step). */
    public ObjectBinding<BufferedImage> fpFrameBinding() { return fpFrame; }
    public ObjectBinding<BufferedImage> baselineFrameBinding() { return baselineFrame; }
    public ObjectBinding<BufferedImage> currentFrameBinding() { return currentFrame; }
    /** The difference heatmap at the selected frame (null before a quantized column finished). */
    public ObjectBinding<BufferedImage> heatmapFrameBinding() { return heatmapFrame; }
    /** The difference at the top of the heatmap's colour scale (NaN without a heatmap). */
    public javafx.beans.binding.DoubleBinding heatmapMaxBinding() { return heatmapMax; }
    public ObjectProperty<GenerationOutcome> outcomeProperty() { return outcome; }
    public BooleanProperty baselineEnabledProperty() { return baselineEnabled; }
    public BooleanProperty currentEnabledProperty() { return currentEnabled; }
    public BooleanProperty heatmapOfCurrentProperty() { return heatmapOfCurrent; }
    public StringProperty backendProperty() { return backend; }
    /** The metrics table of the last outcome (FP32 first). */
    public ObservableList<GenerationOutcome.MetricsRow> metrics() { return metrics; }
    public ObservableList<String> notes() { return notes; }
}
