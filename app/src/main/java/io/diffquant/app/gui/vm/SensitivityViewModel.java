package io.diffquant.app.gui.vm;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.analysis.PerturbationSensitivity;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import javafx.beans.property.BooleanProperty;
import javafx.beans.property.IntegerProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.SimpleBooleanProperty;
import javafx.beans.property.SimpleIntegerProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.function.Consumer;

/**
 * The sensitivity panel: TFMQ's perturbation experiment (noise λ·std on the temporal features vs on non-temporal
 * features, image quality over λ; {@link PerturbationSensitivity}) and the one-layer-at-a-time sensitivity
 * ({@link LayerSensitivity}: per-layer bars and the layer x timestep heatmap), which also fills the layer table's
 * sensitivity column and feeds the bit-budget assignment. Clicking a layer asks the window to select it in the table.
 */
public final class SensitivityViewModel {
    private final LayerTableViewModel layers;
    private final AnalysisContext analysis;
    private final StringProperty lambdas = new SimpleStringProperty(this, "lambdas", "0.01, 0.03, 0.1, 0.3, 1");
    private final IntegerProperty images = new SimpleIntegerProperty(this, "images", 32);
    private final BooleanProperty useFid = new SimpleBooleanProperty(this, "useFid", true);
    /** How each layer is quantized alone (override syntax: w:FIELDS and/or a:FIELDS). */
    private final StringProperty probeSpec = new SimpleStringProperty(this, "probeSpec", "w:int4-asym/channel/minmax");
    private final ObjectProperty<PerturbationSensitivity.Result> perturbation = new SimpleObjectProperty<>(this, "perturbation");
    private final ObjectProperty<LayerSensitivity.Result> layerResult = new SimpleObjectProperty<>(this, "layerResult");
    private Consumer<String> layerSelector = l -> { };

    public SensitivityViewModel(LayerTableViewModel layers, AnalysisContext analysis) {
        this.layers = layers;
        this.analysis = analysis;
        layerResult.addListener((o, a, r) -> fillTable(r));
    }

    public StringProperty lambdasProperty() { return lambdas; }
    public IntegerProperty imagesProperty() { return images; }
    public BooleanProperty useFidProperty() { return useFid; }
    public StringProperty probeSpecProperty() { return probeSpec; }
    public ObjectProperty<PerturbationSensitivity.Result> perturbationProperty() { return perturbation; }
    public ObjectProperty<LayerSensitivity.Result> layerResultProperty() { return layerResult; }
    public void setLayerSelector(Consumer<String> s) { layerSelector = s; }
    /** Asks the window to select a layer in the table (a click on a bar or a heatmap row). */
    public void selectLayer(String layer) { if (layer != null && layers.hasRow(layer)) layerSelector.accept(layer); }

    public void reset() {
        perturbation.set(null);
        layerResult.set(null);
    }

    /** The λ values of the text field; errors name the bad entry. */
    public double[] parseLambdas() {
        List<Double> v = new ArrayList<>();
        for (String part : lambdas.get().split("[,\\s]+")) {
            if (part.isBlank()) continue;
            try {
                double d = Double.parseDouble(part.trim());
                if (!(d >= 0) || !Double.isFinite(d)) throw new NumberFormatException();
                v.add(d);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("λ values: '" + part + "' is not a number >= 0 (e.g. 0.01, 0.1, 1)");
            }
        }
        if (v.isEmpty()) throw new IllegalArgumentException("λ values: give at least one, e.g. 0.01, 0.1, 1");
        return v.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** The probe spec: {@code w:FIELDS,a:FIELDS} as in {@code calibrate --override} (format/granularity/range/mode). */
    public PointSpec parseProbeSpec() {
        LayerOverride o = LayerOverride.parse("layer=" + probeSpec.get().trim(), "probe spec");
        PointSpec s;
        try {
            s = new PointSpec(o.weight().apply(TensorSpec.OFF, TensorSpec.OFF), o.input().apply(TensorSpec.OFF, TensorSpec.OFF));
            s.weight().validate(TensorSpec.Role.WEIGHT);
            s.input().validate(TensorSpec.Role.INPUT);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("probe spec '" + probeSpec.get() + "': " + e.getMessage(), e);
        }
        if (!s.enabled()) throw new IllegalArgumentException("probe spec '" + probeSpec.get() + "' quantizes nothing; e.g. w:int4-asym/channel");
        return s;
    }

    // ------------------------------------------------------------------ work (worker)

    /** The perturbation sweep (FID-FMNIST when asked and the model is a Fashion-MNIST model, else MSE). */
    public WorkTask.Work<PerturbationSensitivity.Result> perturbationWork(DiffusionModel model, Callable<FmnistMetrics> metrics) {
        double[] l = parseLambdas();
        int n = images.get();
        if (n < 2) throw new IllegalArgumentException("images: at least 2, got " + n);
        boolean fid = useFid.get() && metrics != null;
        return (cancelled, progress) -> {
            AnalysisSession s = analysis.session(model);
            progress.report(-1, "Perturbation sweep: " + l.length + " λ values x " + n + " images x 2 sites (temporal, non-temporal) ...");
            FmnistMetrics m = fid ? metrics.call() : null;
            // one λ at a time, so that a cancel stops between them
            List<PerturbationSensitivity.Result> parts = new ArrayList<>();
            for (int i = 0; i < l.length; i++) {
                if (cancelled.getAsBoolean()) throw new CancellationException("perturbation sweep cancelled");
                progress.report((double) i / l.length, "Perturbation sweep: λ = " + l[i] + " (" + (i + 1) + " of " + l.length + ")");
                parts.add(PerturbationSensitivity.evaluate(s, new double[] {l[i]}, n, m));
            }
            return merge(l, parts);
        };
    }

    private static PerturbationSensitivity.Result merge(double[] l, List<PerturbationSensitivity.Result> parts) {
        int k = l.length;
        double[] tf = new double[k], tm = new double[k], nf = new double[k], nm = new double[k];
        double secs = 0;
        for (int i = 0; i < k; i++) {
            PerturbationSensitivity.Result r = parts.get(i);
            tf[i] = r.temporal().fid()[0];
            tm[i] = r.temporal().mse()[0];
            nf[i] = r.nonTemporal().fid()[0];
            nm[i] = r.nonTemporal().mse()[0];
            secs += r.seconds();
        }
        PerturbationSensitivity.Result f = parts.getFirst();
        return new PerturbationSensitivity.Result(l.clone(), f.images(), f.fpFid(), f.fidFloor(), f.metric(),
                new PerturbationSensitivity.Sweep(PerturbationSensitivity.Target.TEMPORAL, f.temporal().sites(), tf, tm),
                new PerturbationSensitivity.Sweep(PerturbationSensitivity.Target.NON_TEMPORAL, f.nonTemporal().sites(), nf, nm), secs);
    }

    /** One layer at a time with the probe spec; cancellable between layers. */
    public WorkTask.Work<LayerSensitivity.Result> layerWork(DiffusionModel model) {
        PointSpec spec = parseProbeSpec();
        return (cancelled, progress) -> {
            AnalysisSession s = analysis.session(model);
            List<LayerSensitivity.LayerProbe> probes = LayerSensitivity.allLayers(model, spec);
            progress.report(0, "Layer sensitivity: the full-precision trajectory ...");
            s.fpOutputs();
            double[][] err = new double[probes.size()][];
            double[] mean = new double[probes.size()];
            int[] ts = null;
            double secs = 0;
            for (int i = 0; i < probes.size(); i++) {
                if (cancelled.getAsBoolean()) throw new CancellationException("layer sensitivity cancelled after " + i + " of " + probes.size() + " layers");
                progress.report((double) i / probes.size(), "Layer sensitivity: " + probes.get(i).layer() + " (" + (i + 1) + " of " + probes.size() + ")");
                LayerSensitivity.Result r = LayerSensitivity.evaluate(s, List.of(probes.get(i)));
                err[i] = r.relativeError()[0];
                mean[i] = r.meanError()[0];
                ts = r.timesteps();
                secs += r.seconds();
            }
            return new LayerSensitivity.Result(probes, ts == null ? new int[0] : ts, err, mean, secs);
        };
    }

    /** The table's sensitivity bars: each layer's mean error relative to the most sensitive layer (others: not measured). */
    private void fillTable(LayerSensitivity.Result r) {
        for (LayerRow row : layers.rows()) row.sensitivityProperty().set(Double.NaN);
        if (r == null) return;
        double max = 0;
        for (double v : r.meanError()) if (Double.isFinite(v)) max = Math.max(max, v);
        List<String> names = r.layers();
        for (int i = 0; i < names.size(); i++) {
            if (!layers.hasRow(names.get(i))) continue;
            double v = r.meanError()[i];
            layers.row(names.get(i)).sensitivityProperty().set(max > 0 && Double.isFinite(v) ? v / max : 0);
        }
    }

    // ------------------------------------------------------------------ chart data

    /** Perturbation series: temporal and non-temporal over λ, FID-FMNIST when measured else MSE vs FP. */
    public List<StudioCharts.Series> perturbationSeries() {
        PerturbationSensitivity.Result r = perturbation.get();
        if (r == null) return List.of();
        boolean fid = !r.metric().isEmpty();
        return List.of(new StudioCharts.Series("temporal features", r.lambdas(), fid ? r.temporal().fid() : r.temporal().mse()),
                new StudioCharts.Series("non-temporal features", r.lambdas(), fid ? r.nonTemporal().fid() : r.nonTemporal().mse()));
    }

    /** The perturbation chart's y label. */
    public String perturbationMetric() {
        PerturbationSensitivity.Result r = perturbation.get();
        return r == null || r.metric().isEmpty() ? "MSE vs FP32" : r.metric();
    }

    /** Layers sorted by mean error (most sensitive first), at most {@code limit}. */
    public List<String> rankedLayers(int limit) {
        LayerSensitivity.Result r = layerResult.get();
        if (r == null) return List.of();
        List<String> out = new ArrayList<>();
        for (int i : r.ranking()) {
            if (out.size() >= limit) break;
            out.add(r.layers().get(i));
        }
        return out;
    }

    public double[] rankedErrors(int limit) {
        LayerSensitivity.Result r = layerResult.get();
        if (r == null) return new double[0];
        int[] rank = r.ranking();
        int n = Math.min(limit, rank.length);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.meanError()[rank[i]];
        return v;
    }
}
