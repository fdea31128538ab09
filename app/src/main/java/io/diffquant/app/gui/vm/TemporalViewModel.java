package io.diffquant.app.gui.vm;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.FeatureTable;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.TemporalMismatch;
import io.diffquant.engine.analysis.TrajectoryDeviation;
import io.diffquant.engine.analysis.Variant;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.TfmqPreset;
import javafx.beans.property.BooleanProperty;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.property.ReadOnlyStringProperty;
import javafx.beans.property.ReadOnlyStringWrapper;
import javafx.beans.property.SimpleBooleanProperty;
import javafx.beans.property.SimpleObjectProperty;
import javafx.beans.property.SimpleStringProperty;
import javafx.beans.property.StringProperty;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CancellationException;

/**
 * The temporal panel (TFMQ, ALGORITHMS.md §6): the switches of TFMQ's temporal feature maintenance (TIAR, FSC and its
 * scope, the feature cache, disturbance-aware selection) as options of the configuration's tfmq method, and what they
 * do to the temporal features: the per-timestep temporal feature error of every method of the ablation (no maintenance,
 * TIAR, FSC, TIAR + FSC, cache, selection) and of the current configuration (one series each, log scale, any feature or
 * their mean), the mismatch matrix, the selection map and the trajectory deviation per step. Computations are the
 * engine's {@code io.diffquant.engine.analysis} on one shared {@link AnalysisSession}; methods are calibrated once with
 * the engine's CalibrationJob and cached, so toggling a switch back to a calibrated combination re-plots at once, and a
 * calibrated but not yet evaluated one costs one pass of the Temporal Information Block.
 */
public final class TemporalViewModel {
    /** "mean over features" in the feature picker. */
    public static final String MEAN = "mean over features";
    public static final String CURRENT = "Current config";
    /** Error measures offered on the chart. */
    public static final List<String> METRICS = List.of("relative L2", "MSE", "1 − cosine");

    /** The methods of TFMQ's ablation, as switch combinations of the tfmq preset. */
    public enum Method {
        NONE("no maintenance", false, false, false, false), TIAR("TIAR", true, false, false, false), FSC("FSC", false, true, false, false),
        TIAR_FSC("TIAR + FSC", true, true, false, false), CACHE("cache", false, false, true, false), SELECTION("TIAR + FSC + cache, selection", true, true, true, true);
        final String label;
        final boolean tiar, fsc, cache, selection;
        Method(String label, boolean tiar, boolean fsc, boolean cache, boolean selection) {
            this.label = label;
            this.tiar = tiar;
            this.fsc = fsc;
            this.cache = cache;
            this.selection = selection;
        }
        public String label() { return label; }
    }

    /** One evaluated configuration: temporal feature error, mismatch and (when computed) trajectory deviation. */
    public record Evaluation(String name, String key, TemporalFeatureError.ConfigError error, TemporalMismatch.Result mismatch,
                             TrajectoryDeviation.Series trajectory, TemporalSection temporal) {}

    /** What the panel shows: the FP table's features and timesteps, and the evaluations by config key. */
    public record Snapshot(List<String> features, int[] timesteps, Map<String, Evaluation> byKey) {
        public Snapshot {
            features = List.copyOf(features);
            timesteps = timesteps.clone();
            byKey = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(byKey));
        }
        public static final Snapshot EMPTY = new Snapshot(List.of(), new int[0], Map.of());
        @Override public int[] timesteps() { return timesteps.clone(); }
        Snapshot with(List<String> f, int[] ts, Map<String, Evaluation> more) {
            Map<String, Evaluation> m = new LinkedHashMap<>(byKey);
            m.putAll(more);
            return new Snapshot(f.isEmpty() ? features : f, ts.length == 0 ? timesteps : ts, m);
        }
    }

    /** What a job brings back: new calibrated configs (to remember) and new evaluations. */
    public record Outcome(Map<QuantViewModel.Target, QuantConfig> calibrated, List<String> features, int[] timesteps,
                          Map<String, Evaluation> evaluations) {}

    private final QuantViewModel quant;
    private final LayerTableViewModel layers;
    private final AnalysisContext analysis;
    private final BooleanProperty tiar = new SimpleBooleanProperty(this, "tiar", true);
    private final BooleanProperty fsc = new SimpleBooleanProperty(this, "fsc", true);
    private final StringProperty fscScope = new SimpleStringProperty(this, "fscScope", "tib");
    private final BooleanProperty cache = new SimpleBooleanProperty(this, "cache");
    private final BooleanProperty selection = new SimpleBooleanProperty(this, "selection");
    /** Reconstruction of the layers outside the TIB in the panel's methods: none (fast, default) or brecq (the paper). */
    private final StringProperty reconstruction = new SimpleStringProperty(this, "reconstruction", "none");
    private final Map<Method, BooleanProperty> shown = new EnumMap<>(Method.class);
    private final BooleanProperty showCurrent = new SimpleBooleanProperty(this, "showCurrent", true);
    private final ObservableList<String> features = FXCollections.observableArrayList(MEAN);
    private final StringProperty feature = new SimpleStringProperty(this, "feature", MEAN);
    private final StringProperty metric = new SimpleStringProperty(this, "metric", METRICS.getFirst());
    /** Which series' mismatch matrix is shown. */
    private final StringProperty mismatchOf = new SimpleStringProperty(this, "mismatchOf", CURRENT);
    private final ReadOnlyObjectWrapper<Snapshot> snapshot = new ReadOnlyObjectWrapper<>(this, "snapshot", Snapshot.EMPTY);
    /** The key of the current configuration (changes with every edit). */
    private final ReadOnlyStringWrapper currentKey = new ReadOnlyStringWrapper(this, "currentKey", "");
    private final ReadOnlyStringWrapper hint = new ReadOnlyStringWrapper(this, "hint", "");
    private final ObjectProperty<Runnable> refreshRequest = new SimpleObjectProperty<>(this, "refreshRequest");
    private boolean syncing;
    /** The quantized feature tables of the last evaluations (worker thread), so the mismatch needs no second TIB pass. */
    private final Map<String, FeatureTable> tables = java.util.Collections.synchronizedMap(new LinkedHashMap<>(8, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<String, FeatureTable> e) { return size() > 4; }
    });

    public TemporalViewModel(QuantViewModel quant, LayerTableViewModel layers, AnalysisContext analysis) {
        this.quant = quant;
        this.layers = layers;
        this.analysis = analysis;
        for (Method m : Method.values()) shown.put(m, new SimpleBooleanProperty(this, "shown" + m, true));
        layers.methodProperty().addListener((o, a, m) -> syncFromMethod());
        layers.revisionProperty().addListener((o, a, r) -> currentChanged());
        selection.addListener((o, a, v) -> { if (v && !cache.get()) cache.set(true); });
        cache.addListener((o, a, v) -> { if (!v && selection.get()) selection.set(false); });
    }

    public BooleanProperty tiarProperty() { return tiar; }
    public BooleanProperty fscProperty() { return fsc; }
    public StringProperty fscScopeProperty() { return fscScope; }
    public BooleanProperty cacheProperty() { return cache; }
    public BooleanProperty selectionProperty() { return selection; }
    public StringProperty reconstructionProperty() { return reconstruction; }
    public BooleanProperty shownProperty(Method m) { return shown.get(m); }
    public BooleanProperty showCurrentProperty() { return showCurrent; }
    public ObservableList<String> features() { return features; }
    public StringProperty featureProperty() { return feature; }
    public StringProperty metricProperty() { return metric; }
    public StringProperty mismatchOfProperty() { return mismatchOf; }
    public ReadOnlyObjectProperty<Snapshot> snapshotProperty() { return snapshot.getReadOnlyProperty(); }
    public Snapshot snapshot() { return snapshot.get(); }
    public ReadOnlyStringProperty currentKeyProperty() { return currentKey.getReadOnlyProperty(); }
    /** What the panel tells the user about the current configuration ("not calibrated", "evaluating ..."). */
    public ReadOnlyStringProperty hintProperty() { return hint.getReadOnlyProperty(); }
    /** Called (FX thread) when the current configuration needs evaluating; the studio runs {@link #evaluateCurrentWork}. */
    public ObjectProperty<Runnable> refreshRequestProperty() { return refreshRequest; }
    public boolean syncing() { return syncing; }

    // ------------------------------------------------------------------ switches <-> method

    /** The tfmq method of a switch combination (the method bar's bits and formats, the panel's reconstruction). */
    public MethodChoice choice(boolean tiarOn, boolean fscOn, String scope, boolean cacheOn, boolean selectionOn) {
        MethodChoice base = quant.choiceFor("tfmq");
        return base.withOption("reconstruction", reconstruction.get()).withOption(TfmqPreset.TIAR, tiarOn)
                .withOption(TfmqPreset.FSC, fscOn).withOption(TfmqPreset.FSC_SCOPE, scope).withOption(TfmqPreset.CACHE, cacheOn)
                .withOption(TfmqPreset.SELECTION, selectionOn);
    }

    /** The method the switches describe now. */
    public MethodChoice switchesChoice() {
        return choice(tiar.get(), fsc.get(), fscScope.get(), cache.get(), selection.get());
    }

    /** The target of an ablation method (its own tfmq configuration, no table edits). */
    public QuantViewModel.Target target(Method m) {
        MethodChoice c = choice(m.tiar, m.fsc, fscScope.get(), m.cache, m.selection);
        return new QuantViewModel.Target(m.label, c, List.of(), quant.key(c, List.of()), true);
    }

    /** Sets the switches from the table's method when it is a tfmq method (undo, import, session), without applying. */
    public void syncFromMethod() {
        MethodChoice m = layers.method();
        if (m == null || !m.preset().startsWith("tfmq")) {
            currentChanged();
            return;
        }
        syncing = true;
        try {
            PresetOptions o = m.resolvedOptions();
            tiar.set(o.getBoolean(TfmqPreset.TIAR));
            fsc.set(o.getBoolean(TfmqPreset.FSC));
            fscScope.set(o.getString(TfmqPreset.FSC_SCOPE));
            cache.set(o.getBoolean(TfmqPreset.CACHE));
            selection.set(o.getBoolean(TfmqPreset.SELECTION));
            if (o.has("reconstruction")) reconstruction.set(o.getString("reconstruction"));
        } catch (RuntimeException ignored) {
            // a method whose options do not resolve any more: leave the switches
        } finally {
            syncing = false;
        }
        currentChanged();
    }

    /**
     * Applies the switches to the configuration: the table's method becomes the switches' tfmq method (one undoable edit).
     * When the table already is a tfmq configuration its own edits stay on top of the new method where they still apply;
     * from any other method the switches choose TFMQ, as its preset button would. Returns rows changed.
     */
    public int applySwitches() {
        MethodChoice m = switchesChoice();
        List<io.diffquant.engine.quant.spec.LayerOverride> edits = List.of();
        if (layers.method().preset().startsWith("tfmq")) {
            try {
                edits = quant.currentTarget().overrides();
            } catch (RuntimeException ignored) {
                // the current table cannot be expressed: apply the method alone
            }
        }
        Map<String, LayerQuantSpec> specs;
        try {
            specs = quant.specsFor(m, edits);
        } catch (RuntimeException e) {
            specs = quant.specsFor(m);
        }
        return layers.replaceSpecs(specs, "temporal switches " + describeSwitches(), m);
    }

    private String describeSwitches() {
        List<String> on = new ArrayList<>();
        if (tiar.get()) on.add("TIAR");
        if (fsc.get()) on.add("FSC(" + fscScope.get() + ")");
        if (cache.get()) on.add("cache");
        if (selection.get()) on.add("selection");
        return on.isEmpty() ? "off" : String.join(" + ", on);
    }

    private void currentChanged() {
        String key;
        try {
            key = quant.context() == null ? "" : quant.currentTarget().key();
        } catch (RuntimeException e) {
            key = "";
        }
        currentKey.set(key);
        if (key.isEmpty()) return;
        if (snapshot.get().byKey().containsKey(key)) {
            hint.set("");
            return;
        }
        boolean calibrated;
        try {
            calibrated = quant.cached(quant.currentTarget()) != null;
        } catch (RuntimeException e) {
            calibrated = false;
        }
        if (calibrated) {
            hint.set("Evaluating the current configuration ...");
            Runnable r = refreshRequest.get();
            if (r != null) r.run();
        } else {
            hint.set("The current configuration is not calibrated yet: press “Calibrate & evaluate”.");
        }
    }

    /** Clears everything (a new model). */
    public void reset() {
        snapshot.set(Snapshot.EMPTY);
        features.setAll(MEAN);
        feature.set(MEAN);
        hint.set("");
    }

    // ------------------------------------------------------------------ work (worker thread)

    /**
     * Calibrates (where not calibrated yet) and evaluates targets: temporal feature error and mismatch against the FP
     * features for each, the trajectory deviation too when asked. Runs on the worker; the FP side is the session's cache.
     */
    public WorkTask.Work<Outcome> work(List<QuantViewModel.Target> targets, Map<QuantViewModel.Target, QuantConfig> configs,
                                       Map<QuantViewModel.Target, io.diffquant.engine.quant.preset.CalibrationJob.Request> requests,
                                       boolean trajectories, io.diffquant.engine.model.DiffusionModel model) {
        return work(targets, configs, requests, trajectories, true, model);
    }

    /**
     * As {@link #work(List, Map, Map, boolean, io.diffquant.engine.model.DiffusionModel)}; without {@code mismatch} only the
     * error is computed (a toggle's re-plot: one pass of the Temporal Information Block), and {@link #mismatchWork} adds the
     * mismatch afterwards from the kept feature table.
     */
    public WorkTask.Work<Outcome> work(List<QuantViewModel.Target> targets, Map<QuantViewModel.Target, QuantConfig> configs,
                                       Map<QuantViewModel.Target, io.diffquant.engine.quant.preset.CalibrationJob.Request> requests,
                                       boolean trajectories, boolean mismatch, io.diffquant.engine.model.DiffusionModel model) {
        return (cancelled, progress) -> {
            Map<QuantViewModel.Target, QuantConfig> calibrated = new LinkedHashMap<>();
            int n = targets.size(), i = 0;
            double share = trajectories ? 0.5 : 0.8;
            for (QuantViewModel.Target t : targets) {
                if (configs.get(t) != null || !t.quantizes()) { i++; continue; }
                int idx = i;
                QuantConfig c = Calibrations.run(requests.get(t), cancelled, null, p -> progress.report(share * (idx + Calibrations.fraction(p)) / n,
                        "Calibrating " + t.label() + ": [" + p.phase().name().toLowerCase(Locale.ROOT) + "] " + p.message()));
                calibrated.put(t, c);
                i++;
            }
            AnalysisSession s = analysis.session(model);
            progress.report(share, "Temporal features of full precision ...");
            FeatureTable fp = s.fpFeatures();
            Map<String, Evaluation> out = new LinkedHashMap<>();
            i = 0;
            for (QuantViewModel.Target t : targets) {
                if (cancelled.getAsBoolean()) throw new CancellationException("temporal analysis cancelled");
                QuantConfig c = configs.get(t) != null ? configs.get(t) : calibrated.get(t);
                progress.report(share + (1 - share) * i++ / n, "Temporal features of " + t.label() + " ...");
                if (c == null) continue;   // quantizes nothing
                Variant v = Variant.of(t.label(), c, true);
                long t0 = System.nanoTime();
                FeatureTable q = s.features(v);
                tables.put(t.key(), q);
                TemporalFeatureError.ConfigError e = TemporalFeatureError.compare(t.label(), fp, q);
                e = new TemporalFeatureError.ConfigError(e.config(), e.relativeL2(), e.mse(), e.cosine(), (System.nanoTime() - t0) / 1e9);
                TemporalMismatch.Result mm = mismatch ? TemporalMismatch.compute(t.label(), fp, q) : null;
                TrajectoryDeviation.Series tr = null;
                if (trajectories) {
                    progress.report(share + (1 - share) * (i - 0.5) / n, "Trajectory of " + t.label() + " ...");
                    tr = TrajectoryDeviation.compare(t.label(), s.fpTrajectory(), s.trajectory(v));
                }
                out.put(t.key(), new Evaluation(t.label(), t.key(), e, mm, tr, c.temporal()));
            }
            progress.report(1, "Temporal analysis done");
            return new Outcome(calibrated, fp.features(), fp.timesteps(), out);
        };
    }

    /** Adds the mismatch to an evaluation made without it (from the kept feature table, else one more TIB pass). */
    public WorkTask.Work<Outcome> mismatchWork(Evaluation ev, QuantConfig config, io.diffquant.engine.model.DiffusionModel model) {
        return (cancelled, progress) -> {
            AnalysisSession s = analysis.session(model);
            FeatureTable fp = s.fpFeatures();
            FeatureTable q = tables.get(ev.key());
            if (q == null) q = s.features(Variant.of(ev.name(), config, true));
            TemporalMismatch.Result mm = TemporalMismatch.compute(ev.name(), fp, q);
            Evaluation e = new Evaluation(ev.name(), ev.key(), ev.error(), mm, ev.trajectory(), ev.temporal());
            return new Outcome(Map.of(), fp.features(), fp.timesteps(), Map.of(ev.key(), e));
        };
    }

    /** The evaluation of the current configuration when it lacks its mismatch (a follow-up job adds it), else null. */
    public Evaluation currentWithoutMismatch() {
        Evaluation e = snapshot.get().byKey().get(currentKey.get());
        return e != null && e.mismatch() == null ? e : null;
    }

    /** The targets of the shown ablation methods (and the current configuration when it quantizes something). */
    public List<QuantViewModel.Target> methodTargets(boolean withCurrent) {
        List<QuantViewModel.Target> t = new ArrayList<>();
        for (Method m : Method.values()) if (shown.get(m).get()) t.add(target(m));
        if (withCurrent) {
            QuantViewModel.Target c = currentTarget();
            if (c.quantizes() && t.stream().noneMatch(x -> x.key().equals(c.key()))) t.add(c);
        }
        return t;
    }

    /** The current configuration as a target named for the panel. */
    public QuantViewModel.Target currentTarget() {
        QuantViewModel.Target c = quant.currentTarget();
        return new QuantViewModel.Target(CURRENT, c.method(), c.overrides(), c.key(), c.quantizes());
    }

    /** Merges a job's outcome (FX thread): remembers the calibrated configs, adds the evaluations, updates the pickers. */
    public void accept(Outcome o) {
        o.calibrated().forEach(quant::remember);
        Snapshot s = snapshot.get().with(o.features(), o.timesteps(), o.evaluations());
        snapshot.set(s);
        List<String> f = new ArrayList<>();
        f.add(MEAN);
        f.addAll(s.features());
        if (!features.equals(f)) {
            String keep = feature.get();
            features.setAll(f);
            feature.set(f.contains(keep) ? keep : MEAN);
        }
        currentChanged();
    }

    // ------------------------------------------------------------------ what the charts show

    /** The evaluation of a series name (an ablation label or {@link #CURRENT}), or null. */
    public Evaluation evaluation(String name) {
        Snapshot s = snapshot.get();
        if (CURRENT.equals(name)) return s.byKey().get(currentKey.get());
        for (Method m : Method.values()) if (m.label.equals(name)) return s.byKey().get(target(m).key());
        return null;
    }

    /** The error of one evaluation per timestep for the picked feature and metric. */
    public double[] errorSeries(Evaluation e) {
        TemporalFeatureError.ConfigError c = e.error();
        double[][] a = switch (metric.get()) {
            case "MSE" -> c.mse();
            case "1 − cosine" -> oneMinus(c.cosine());
            default -> c.relativeL2();
        };
        String f = feature.get();
        int fi = snapshot.get().features().indexOf(f);
        if (fi >= 0) return a[fi].clone();
        int nt = a.length == 0 ? 0 : a[0].length;
        double[] m = new double[nt];
        for (double[] row : a) for (int k = 0; k < nt; k++) m[k] += row[k] / a.length;
        return m;
    }

    private static double[][] oneMinus(double[][] a) {
        double[][] o = new double[a.length][];
        for (int i = 0; i < a.length; i++) {
            o[i] = new double[a[i].length];
            for (int k = 0; k < a[i].length; k++) o[i][k] = 1 - a[i][k];
        }
        return o;
    }

    /** The series of the error chart: one per shown, evaluated method, then the current configuration. */
    public List<StudioCharts.Series> errorChartSeries() {
        List<StudioCharts.Series> out = new ArrayList<>();
        double[] x = timestepAxis();
        for (Method m : Method.values()) {
            if (!shown.get(m).get()) continue;
            Evaluation e = evaluation(m.label);
            if (e != null) out.add(new StudioCharts.Series(m.label, x, errorSeries(e)));
        }
        Evaluation cur = evaluation(CURRENT);
        if (showCurrent.get() && cur != null) out.add(new StudioCharts.Series(CURRENT, x, errorSeries(cur)));
        return out;
    }

    /** The series of the trajectory-deviation chart (||x_t^q − x_t^FP|| per step). */
    public List<StudioCharts.Series> trajectorySeries() {
        List<StudioCharts.Series> out = new ArrayList<>();
        double[] x = timestepAxis();
        for (Method m : Method.values()) {
            Evaluation e = shown.get(m).get() ? evaluation(m.label) : null;
            if (e != null && e.trajectory() != null) out.add(new StudioCharts.Series(m.label, x, e.trajectory().l2()));
        }
        Evaluation cur = evaluation(CURRENT);
        if (showCurrent.get() && cur != null && cur.trajectory() != null) out.add(new StudioCharts.Series(CURRENT, x, cur.trajectory().l2()));
        return out;
    }

    /** The timesteps as chart x values (the sampling timestep values). */
    public double[] timestepAxis() {
        int[] ts = snapshot.get().timesteps();
        double[] x = new double[ts.length];
        for (int i = 0; i < ts.length; i++) x[i] = ts[i];
        return x;
    }

    /** The mismatch matrix of the picked series and feature: [k][k'] distances, or null. */
    public TemporalMismatch.FeatureMismatch mismatch() {
        Evaluation e = evaluation(mismatchOf.get());
        if (e == null || e.mismatch() == null) for (Method m : Method.values()) {   // fall back to the first evaluated series
            Evaluation c = shown.get(m).get() ? evaluation(m.label) : null;
            if ((e == null || e.mismatch() == null) && c != null && c.mismatch() != null) e = c;
        }
        if (e == null || e.mismatch() == null) return null;
        String f = feature.get();
        if (MEAN.equals(f)) return e.mismatch().all();
        try {
            return e.mismatch().feature(f);
        } catch (IllegalArgumentException ex) {
            return e.mismatch().all();
        }
    }

    /** The selection map [feature][timestep] (1 = cache) of the selection method or the current config, or null. */
    public double[][] selectionMap() {
        Evaluation e = evaluation(CURRENT);
        TemporalSection t = e == null ? null : e.temporal();
        if (t == null || t.selectionMap() == null) {
            Evaluation ds = evaluation(Method.SELECTION.label);
            t = ds == null ? null : ds.temporal();
        }
        if (t == null || t.selectionMap() == null) return null;
        boolean[][] b = t.selectionMap();
        double[][] d = new double[b.length][];
        for (int i = 0; i < b.length; i++) {
            d[i] = new double[b[i].length];
            for (int k = 0; k < b[i].length; k++) d[i][k] = b[i][k] ? 1 : 0;
        }
        return d;
    }

    /** Feature names of the selection map. */
    public List<String> selectionFeatures() {
        Evaluation e = evaluation(CURRENT);
        TemporalSection t = e == null || e.temporal() == null || e.temporal().selectionMap() == null
                ? (evaluation(Method.SELECTION.label) == null ? null : evaluation(Method.SELECTION.label).temporal()) : e.temporal();
        if (t == null) return List.of();
        return t.features().stream().map(TemporalSection.FeatureRef::name).toList();
    }

    /** The names of the series a mismatch matrix can be shown for. */
    public List<String> seriesNames() {
        List<String> n = new ArrayList<>();
        n.add(CURRENT);
        for (Method m : Method.values()) n.add(m.label);
        return n;
    }
}
