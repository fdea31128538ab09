package io.diffquant.app.gui.view;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.app.gui.vm.TemporalViewModel;
import io.diffquant.engine.analysis.TemporalMismatch;
import javafx.beans.Observable;
import javafx.beans.binding.Bindings;
import javafx.collections.FXCollections;
import javafx.geometry.Insets;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Label;
import javafx.scene.control.ScrollPane;
import javafx.scene.control.TitledPane;
import javafx.scene.control.Tooltip;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.VBox;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.fx.ChartViewer;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The temporal panel bound to a {@link TemporalViewModel}: TFMQ's switches (TIAR, FSC and its scope, cache, selection)
 * applied to the configuration as one click each, the methods whose series are shown, "Calibrate &amp; evaluate", and
 * four plots: the per-timestep temporal feature error (one series per method, log scale, any feature), the trajectory
 * deviation per step, the mismatch matrix of one series, and the selection map.
 */
public final class TemporalView {
    private final StudioViewModel studio;
    private final TemporalViewModel vm;
    private final BorderPane root = new BorderPane();
    private final JFreeChart errorChart = StudioCharts.lines("Temporal feature error per timestep", "timestep t", "relative L2 error", true);
    private final JFreeChart trajectoryChart = StudioCharts.lines("Trajectory deviation ||x_t^q − x_t^FP||", "timestep t", "L2 distance", false);
    private final ChartViewer errorViewer = new ChartViewer(errorChart);
    private final ChartViewer trajectoryViewer = new ChartViewer(trajectoryChart);
    private final ChartViewer mismatchViewer = new ChartViewer(null);
    private final ChartViewer selectionViewer = new ChartViewer(null);
    private final List<CheckBox> switches = new ArrayList<>();
    /** Count of error-chart updates (the pulse / latency tests watch it). */
    private long chartUpdates;

    public TemporalView(StudioViewModel studio) {
        this.studio = studio;
        this.vm = studio.temporal();
        root.setId("temporal-panel");
        ScrollPane left = ChartPanels.controls(controls(), 290);
        root.setLeft(left);
        root.setCenter(charts());
        List<Observable> deps = new ArrayList<>(List.of(vm.snapshotProperty(), vm.featureProperty(), vm.metricProperty(), vm.currentKeyProperty(),
                vm.showCurrentProperty(), vm.mismatchOfProperty(), studio.layers().methodProperty()));
        for (TemporalViewModel.Method m : TemporalViewModel.Method.values()) deps.add(vm.shownProperty(m));
        for (Observable o : deps) o.addListener(x -> update());
        update();
    }

    public Node node() { return root; }
    public JFreeChart errorChart() { return errorChart; }
    public ChartViewer mismatchViewer() { return mismatchViewer; }
    public long chartUpdates() { return chartUpdates; }

    private Node controls() {
        CheckBox tiar = toggle("TIAR", "temporal-tiar", vm.tiarProperty(),
                "Temporal information aware reconstruction: learned rounding of the Temporal Information Block against the FP temporal features");
        CheckBox fsc = toggle("FSC", "temporal-fsc", vm.fscProperty(), "Finite set calibration: one activation range per sampling timestep");
        ComboBox<String> scope = new ComboBox<>(FXCollections.observableArrayList("tib", "all"));
        scope.setId("temporal-fsc-scope");
        scope.valueProperty().bindBidirectional(vm.fscScopeProperty());
        scope.setTooltip(new Tooltip("FSC scope: tib = the Temporal Information Block's activations (the paper), all = every activation (the authors' code)"));
        scope.valueProperty().addListener((o, a, b) -> { if (a != null && !a.equals(b)) studio.applyTemporalSwitches(); });
        scope.disableProperty().bind(vm.fscProperty().not());
        CheckBox cache = toggle("cache", "temporal-cache", vm.cacheProperty(),
                "Cache-based maintenance: the FP temporal features of every (t, y), quantized offline, looked up at inference");
        CheckBox sel = toggle("disturbance-aware selection", "temporal-selection", vm.selectionProperty(),
                "Per feature and timestep the lower-error of the TIB path and the cache (needs the cache)");
        ComboBox<String> recon = new ComboBox<>(FXCollections.observableArrayList("none", "brecq", "adaround"));
        recon.setId("temporal-reconstruction");
        recon.valueProperty().bindBidirectional(vm.reconstructionProperty());
        recon.setTooltip(new Tooltip("Rounding of the layers outside the Temporal Information Block in these methods: none (round to nearest, fast) "
                + "or BRECQ (the paper, slow); the temporal features depend on the TIB only"));
        Label method = new Label();
        method.setWrapText(true);
        method.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.9em;");
        method.textProperty().bind(Bindings.createStringBinding(() -> "Configuration: " + studio.layers().method().label(), studio.layers().methodProperty()));
        VBox sw = new VBox(6, tiar, new HBox(6, fsc, scope), cache, sel, new HBox(6, new Label("other layers"), recon), method);
        TitledPane switchesPane = new TitledPane("Temporal feature maintenance", sw);
        switchesPane.setCollapsible(false);

        VBox methods = new VBox(4);
        for (TemporalViewModel.Method m : TemporalViewModel.Method.values()) {
            CheckBox c = new CheckBox(m.label());
            c.selectedProperty().bindBidirectional(vm.shownProperty(m));
            methods.getChildren().add(c);
        }
        CheckBox current = new CheckBox(TemporalViewModel.CURRENT);
        current.selectedProperty().bindBidirectional(vm.showCurrentProperty());
        methods.getChildren().add(current);
        Button run = new Button("Calibrate & evaluate");
        run.setId("temporal-run");
        run.setMaxWidth(Double.MAX_VALUE);
        run.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        run.setOnAction(e -> studio.calibrateTemporal());
        run.setTooltip(new Tooltip("Calibrates the shown methods and the current configuration (once; they are cached) and evaluates their temporal"
                + " feature error, mismatch and trajectory deviation"));
        Label hint = new Label();
        hint.setId("temporal-hint");
        hint.setWrapText(true);
        hint.setStyle("-fx-text-fill: #b45309;");
        hint.textProperty().bind(vm.hintProperty());
        methods.getChildren().addAll(run, hint);
        TitledPane methodsPane = new TitledPane("Methods (series)", methods);
        methodsPane.setCollapsible(false);

        ComboBox<String> feature = new ComboBox<>(vm.features());
        feature.setId("temporal-feature");
        feature.valueProperty().bindBidirectional(vm.featureProperty());
        feature.setMaxWidth(Double.MAX_VALUE);
        ComboBox<String> metric = new ComboBox<>(FXCollections.observableArrayList(TemporalViewModel.METRICS));
        metric.valueProperty().bindBidirectional(vm.metricProperty());
        ComboBox<String> mismatchOf = new ComboBox<>(FXCollections.observableArrayList(vm.seriesNames()));
        mismatchOf.setId("temporal-mismatch-of");
        mismatchOf.valueProperty().bindBidirectional(vm.mismatchOfProperty());
        mismatchOf.setMaxWidth(Double.MAX_VALUE);
        VBox pick = new VBox(6, new Label("Feature"), feature, new Label("Error"), metric, new Label("Mismatch matrix of"), mismatchOf);
        TitledPane pickPane = new TitledPane("Plots", pick);
        pickPane.setCollapsible(false);
        VBox box = new VBox(8, switchesPane, methodsPane, pickPane);
        box.setPadding(new Insets(8));
        return box;
    }

    private CheckBox toggle(String text, String id, javafx.beans.property.BooleanProperty p, String tip) {
        CheckBox c = new CheckBox(text);
        c.setId(id);
        c.selectedProperty().bindBidirectional(p);
        c.setTooltip(new Tooltip(tip));
        c.setOnAction(e -> studio.applyTemporalSwitches());
        switches.add(c);
        return c;
    }

    private Node charts() {
        GridPane g = ChartPanels.grid(50);
        errorViewer.setId("temporal-error-chart");
        trajectoryViewer.setId("temporal-trajectory-chart");
        mismatchViewer.setId("temporal-mismatch-chart");
        selectionViewer.setId("temporal-selection-chart");
        g.add(errorViewer, 0, 0);
        g.add(trajectoryViewer, 1, 0);
        g.add(mismatchViewer, 0, 1);
        g.add(selectionViewer, 1, 1);
        ChartPanels.size(List.of(errorViewer, trajectoryViewer, mismatchViewer, selectionViewer), 200, 150, 420, 300);
        return g;
    }

    /** Plots are redrawn only while the panel is shown (a hidden panel remembers to redraw when it is shown). */
    private final ChartPanels.RedrawGate gate = new ChartPanels.RedrawGate(root, this::update);

    /** Redraws what changed while the panel was hidden (the window calls it when the panel's tab is selected). */
    public void refreshIfDirty() { gate.refreshIfDirty(); }

    /** Rebuilds every plot from the view model (cheap: the numbers are computed on the worker). */
    private void update() {
        if (gate.hidden()) return;
        StudioCharts.setSeries(errorChart, vm.errorChartSeries());
        errorChart.getXYPlot().getRangeAxis().setLabel(vm.metricProperty().get() + " · " + vm.featureProperty().get());
        chartUpdates++;
        StudioCharts.setSeries(trajectoryChart, vm.trajectorySeries());
        TemporalMismatch.FeatureMismatch mm = vm.mismatch();
        double[] ts = vm.timestepAxis();
        if (mm != null) {
            String[] rows = new String[ts.length];
            for (int i = 0; i < ts.length; i++) rows[i] = Long.toString((long) ts[i]);
            mismatchViewer.setChart(StudioCharts.heatmap(String.format(Locale.ROOT, "Mismatch of %s (%s): rate %.1f %%", vm.mismatchOfProperty().get(),
                    mm.feature(), 100 * mm.rate()), "FP timestep t'", "quantized at t", mm.distance(), rows, ts, "distance"));
        } else {
            mismatchViewer.setChart(StudioCharts.heatmap("Mismatch matrix (evaluate a configuration)", "FP timestep t'", "quantized at t",
                    new double[0][0], new String[0], new double[0], "distance"));
        }
        double[][] sel = vm.selectionMap();
        if (sel != null && sel.length > 0) {
            selectionViewer.setChart(StudioCharts.heatmap("Selection map (1 = cache, 0 = TIB)", "timestep t", "feature", sel,
                    vm.selectionFeatures().toArray(new String[0]), ts.length == sel[0].length ? ts : null, "cache"));
        } else {
            selectionViewer.setChart(StudioCharts.heatmap("Selection map (the selection method)", "timestep t", "feature", new double[0][0],
                    new String[0], new double[0], "cache"));
        }
    }
}
