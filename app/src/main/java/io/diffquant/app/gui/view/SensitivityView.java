package io.diffquant.app.gui.view;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.app.gui.vm.SensitivityViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.engine.analysis.LayerSensitivity;
import javafx.beans.property.ObjectProperty;
import javafx.geometry.Insets;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.Label;
import javafx.scene.control.ScrollPane;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TextField;
import javafx.scene.control.TitledPane;
import javafx.scene.control.Tooltip;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.VBox;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.entity.CategoryItemEntity;
import org.jfree.chart.entity.ChartEntity;
import org.jfree.chart.entity.XYItemEntity;
import org.jfree.chart.fx.ChartViewer;
import org.jfree.chart.fx.interaction.ChartMouseEventFX;
import org.jfree.chart.fx.interaction.ChartMouseListenerFX;

import java.util.List;

/**
 * The sensitivity panel bound to a {@link SensitivityViewModel}: the perturbation sweep (temporal vs non-temporal
 * features over λ), the per-layer sensitivity bars (most sensitive first) and the layer x timestep heatmap; clicking a
 * bar or a heatmap row selects that layer in the layer table.
 */
public final class SensitivityView {
    private static final int BARS = 40;
    private final StudioViewModel studio;
    private final SensitivityViewModel vm;
    private final BorderPane root = new BorderPane();
    private final JFreeChart perturbationChart = StudioCharts.lines("Perturbation sensitivity", "λ (noise = λ · std, log)", "FID-FMNIST", false, true);
    private final ChartViewer perturbationViewer = new ChartViewer(perturbationChart);
    private final ChartViewer barsViewer = new ChartViewer(null);
    private final ChartViewer heatmapViewer = new ChartViewer(null);
    private final ObjectProperty<Integer> imagesObj;

    public SensitivityView(StudioViewModel studio) {
        this.studio = studio;
        this.vm = studio.sensitivity();
        imagesObj = vm.imagesProperty().asObject();
        root.setId("sensitivity-panel");
        ScrollPane left = ChartPanels.controls(controls(), 290);
        root.setLeft(left);
        root.setCenter(charts());
        vm.perturbationProperty().addListener((o, a, r) -> refresh());
        vm.layerResultProperty().addListener((o, a, r) -> refresh());
        refresh();
    }

    public Node node() { return root; }
    public ChartViewer barsViewer() { return barsViewer; }

    private Node controls() {
        TextField lambdas = new TextField();
        lambdas.setId("sens-lambdas");
        lambdas.textProperty().bindBidirectional(vm.lambdasProperty());
        Spinner<Integer> images = new Spinner<>();
        SpinnerValueFactory.IntegerSpinnerValueFactory f = new SpinnerValueFactory.IntegerSpinnerValueFactory(2, 5000, 32, 8);
        f.valueProperty().bindBidirectional(imagesObj);
        images.setValueFactory(f);
        images.setEditable(true);
        CheckBox fid = new CheckBox("FID-FMNIST (else MSE vs FP32)");
        fid.selectedProperty().bindBidirectional(vm.useFidProperty());
        Button runP = new Button("Run perturbation sweep");
        runP.setId("sens-run-perturbation");
        runP.setMaxWidth(Double.MAX_VALUE);
        runP.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        runP.setOnAction(e -> studio.runPerturbation());
        VBox p = new VBox(6, new Label("λ values"), lambdas, new Label("images per setting"), images, fid, runP);
        TitledPane pp = new TitledPane("Perturbation (TFMQ's motivating plot)", p);
        pp.setCollapsible(false);

        TextField spec = new TextField();
        spec.setId("sens-spec");
        spec.textProperty().bindBidirectional(vm.probeSpecProperty());
        spec.setTooltip(new Tooltip("How each layer is quantized alone: w:FIELDS and/or a:FIELDS (format/granularity/range/mode), "
                + "e.g. w:int4-asym/channel or w:fp4-e2m1/group32,a:int8-asym/tensor"));
        Button runL = new Button("Run layer sensitivity");
        runL.setId("sens-run-layers");
        runL.setMaxWidth(Double.MAX_VALUE);
        runL.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        runL.setOnAction(e -> studio.runLayerSensitivity());
        Label help = new Label("One layer at a time quantized with this spec; the output error vs FP32 at every sampling step. "
                + "Fills the table's sensitivity column; click a bar or a heatmap row to select the layer.");
        help.setWrapText(true);
        help.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.9em;");
        VBox l = new VBox(6, new Label("probe spec"), spec, runL, help);
        TitledPane lp = new TitledPane("Per-layer sensitivity", l);
        lp.setCollapsible(false);
        VBox box = new VBox(8, pp, lp);
        box.setPadding(new Insets(8));
        return box;
    }

    private Node charts() {
        GridPane g = ChartPanels.grid(50);
        perturbationViewer.setId("sens-perturbation-chart");
        barsViewer.setId("sens-bars-chart");
        heatmapViewer.setId("sens-heatmap-chart");
        g.add(perturbationViewer, 0, 0);
        g.add(barsViewer, 1, 0);
        g.add(heatmapViewer, 0, 1, 2, 1);
        ChartPanels.size(List.of(perturbationViewer, barsViewer, heatmapViewer), 200, 150, 420, 300);
        ChartMouseListenerFX click = new ChartMouseListenerFX() {
            @Override public void chartMouseClicked(ChartMouseEventFX e) { select(e.getEntity()); }
            @Override public void chartMouseMoved(ChartMouseEventFX e) { }
        };
        barsViewer.addChartMouseListener(click);
        heatmapViewer.addChartMouseListener(click);
        return g;
    }

    /** Redraws while shown; a hidden panel redraws when it is shown. */
    private final ChartPanels.RedrawGate gate = new ChartPanels.RedrawGate(root, this::refresh);

    /** Redraws what changed while the panel was hidden (the window calls it when the panel's tab is selected). */
    public void refreshIfDirty() { gate.refreshIfDirty(); }

    private void refresh() {
        if (gate.hidden()) return;
        updatePerturbation();
        updateLayers();
    }

    /** A bar's category or a heatmap row is a layer: select it in the table. */
    void select(ChartEntity e) {
        if (e instanceof CategoryItemEntity c) vm.selectLayer(String.valueOf(c.getColumnKey()));
        else if (e instanceof XYItemEntity xy) {
            LayerSensitivity.Result r = vm.layerResultProperty().get();
            if (r == null) return;
            int row = (int) Math.round(xy.getDataset().getYValue(xy.getSeriesIndex(), xy.getItem()));
            if (row >= 0 && row < r.layers().size()) vm.selectLayer(r.layers().get(row));
        }
    }

    private void updatePerturbation() {
        StudioCharts.setSeries(perturbationChart, vm.perturbationSeries());
        perturbationChart.getXYPlot().getRangeAxis().setLabel(vm.perturbationMetric());
    }

    private void updateLayers() {
        LayerSensitivity.Result r = vm.layerResultProperty().get();
        if (r == null) {
            barsViewer.setChart(StudioCharts.bars("Per-layer sensitivity (run it)", "layer", "relative output error", List.of(), new double[0], true));
            heatmapViewer.setChart(StudioCharts.heatmap("Layer x timestep sensitivity", "timestep t", "layer", new double[0][0], new String[0],
                    new double[0], "relative error"));
            return;
        }
        barsViewer.setChart(StudioCharts.bars("Per-layer sensitivity (" + r.probes().getFirst().describe() + "), most sensitive first", "layer",
                "relative output error", vm.rankedLayers(BARS), vm.rankedErrors(BARS), true));
        int[] ts = r.timesteps();
        double[] tsd = new double[ts.length];
        for (int i = 0; i < ts.length; i++) tsd[i] = ts[i];
        heatmapViewer.setChart(StudioCharts.heatmap("Layer x timestep sensitivity", "timestep t", "layer", r.relativeError(),
                r.layers().toArray(new String[0]), tsd, "relative error"));
    }
}
