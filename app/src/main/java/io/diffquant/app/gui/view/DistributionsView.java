package io.diffquant.app.gui.view;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.app.gui.vm.DistributionsViewModel;
import io.diffquant.app.gui.vm.Formats;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.engine.analysis.Histograms;
import javafx.beans.binding.Bindings;
import javafx.beans.property.ObjectProperty;
import javafx.collections.FXCollections;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Label;
import javafx.scene.control.ScrollPane;
import javafx.scene.control.Slider;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TextField;
import javafx.scene.control.TitledPane;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.VBox;
import org.jfree.chart.fx.ChartViewer;

import java.util.List;

/**
 * The distributions panel bound to a {@link DistributionsViewModel}: the selected layer's weight histogram and its
 * input-activation histogram at the timestep picked by the slider, with an INT format's grid (left) and an FP format's
 * grid (right) overlaid.
 */
public final class DistributionsView {
    private final StudioViewModel studio;
    private final DistributionsViewModel vm;
    private final BorderPane root = new BorderPane();
    private final ChartViewer weightInt = new ChartViewer(null), weightFp = new ChartViewer(null), actInt = new ChartViewer(null), actFp = new ChartViewer(null);
    private final Slider timestep = new Slider(0, 0, 0);
    private final ObjectProperty<Integer> binsObj;

    public DistributionsView(StudioViewModel studio) {
        this.studio = studio;
        this.vm = studio.distributions();
        binsObj = vm.binsProperty().asObject();
        root.setId("distributions-panel");
        ScrollPane left = ChartPanels.controls(controls(), 270);
        root.setLeft(left);
        root.setCenter(charts());
        vm.resultProperty().addListener((o, a, r) -> update());
        vm.frameProperty().addListener((o, a, f) -> {
            if (Math.round(timestep.getValue()) != f.intValue()) timestep.setValue(f.intValue());
            if (!gate.hidden()) updateActivations();
        });
        vm.logCountsProperty().addListener((o, a, b) -> update());
        update();
    }

    public Node node() { return root; }

    private Node controls() {
        TextField layer = new TextField();
        layer.setId("dist-layer");
        layer.textProperty().bindBidirectional(vm.layerProperty());
        layer.setPromptText("select a layer in the table");
        ComboBox<String> fi = formatCombo("dist-int", vm.intFormatProperty().get(), "int");
        fi.valueProperty().bindBidirectional(vm.intFormatProperty());
        ComboBox<String> ff = formatCombo("dist-fp", vm.fpFormatProperty().get(), "fp");
        ff.valueProperty().bindBidirectional(vm.fpFormatProperty());
        ComboBox<String> gran = new ComboBox<>(FXCollections.observableArrayList("tensor", "channel", "group32", "group64", "group128"));
        gran.setEditable(true);
        gran.valueProperty().bindBidirectional(vm.weightGranularityProperty());
        Spinner<Integer> bins = new Spinner<>();
        SpinnerValueFactory.IntegerSpinnerValueFactory bf = new SpinnerValueFactory.IntegerSpinnerValueFactory(8, 1024, 80, 8);
        bf.valueProperty().bindBidirectional(binsObj);
        bins.setValueFactory(bf);
        bins.setEditable(true);
        CheckBox log = new CheckBox("log counts");
        log.selectedProperty().bindBidirectional(vm.logCountsProperty());
        Button run = new Button("Show histograms");
        run.setId("dist-run");
        run.setMaxWidth(Double.MAX_VALUE);
        run.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        run.setOnAction(e -> studio.runDistributions());
        Label help = new Label("Weights with the format's parameters for this layer (per channel: the widest channel's grid); activations at "
                + "every sampling step of the FP trajectory, the grid of the layer's min-max over all timesteps.");
        help.setWrapText(true);
        help.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.9em;");
        VBox box = new VBox(6, new Label("Layer"), layer, new Label("INT format (left)"), fi, new Label("FP format (right)"), ff,
                new Label("weight granularity"), gran, new Label("bins"), bins, log, run, help);
        TitledPane p = new TitledPane("Distributions", box);
        p.setCollapsible(false);
        VBox outer = new VBox(p);
        outer.setPadding(new Insets(8));
        return outer;
    }

    private static ComboBox<String> formatCombo(String id, String value, String prefix) {
        ComboBox<String> c = new ComboBox<>(FXCollections.observableArrayList(Formats.formatChoices().stream()
                .filter(n -> n.startsWith(prefix) || n.startsWith("mx") || n.startsWith("nv")).toList()));
        c.setId(id);
        c.setEditable(true);
        c.setValue(value);
        c.setMaxWidth(Double.MAX_VALUE);
        return c;
    }

    private Node charts() {
        GridPane g = ChartPanels.grid(47);
        weightInt.setId("dist-weight-int");
        weightFp.setId("dist-weight-fp");
        actInt.setId("dist-act-int");
        actFp.setId("dist-act-fp");
        g.add(weightInt, 0, 0);
        g.add(weightFp, 1, 0);
        g.add(actInt, 0, 1);
        g.add(actFp, 1, 1);
        timestep.setId("dist-timestep");
        timestep.setBlockIncrement(1);
        timestep.setMajorTickUnit(1);
        timestep.setMinorTickCount(0);
        timestep.setSnapToTicks(true);
        timestep.valueProperty().addListener((o, a, v) -> vm.frameProperty().set((int) Math.round(v.doubleValue())));
        HBox.setHgrow(timestep, Priority.ALWAYS);
        Label tl = new Label();
        tl.setId("dist-timestep-label");
        tl.setMinWidth(180);
        tl.textProperty().bind(Bindings.createStringBinding(vm::frameLabel, vm.frameProperty(), vm.resultProperty()));
        HBox slider = new HBox(10, new Label("Timestep"), timestep, tl);
        slider.setAlignment(Pos.CENTER_LEFT);
        g.add(slider, 0, 2, 2, 1);
        ChartPanels.size(List.of(weightInt, weightFp, actInt, actFp), 200, 140, 420, 280);
        return g;
    }

    /** Plots are redrawn only while the panel is shown (a hidden panel remembers to redraw when it is shown). */
    private final ChartPanels.RedrawGate gate = new ChartPanels.RedrawGate(root, this::update);

    /** Redraws what changed while the panel was hidden (the window calls it when the panel's tab is selected). */
    public void refreshIfDirty() { gate.refreshIfDirty(); }

    private void update() {
        DistributionsViewModel.Result r = vm.resultProperty().get();
        timestep.setMax(r == null ? 0 : Math.max(0, r.frames() - 1));
        timestep.setDisable(r == null);
        if (gate.hidden()) return;
        if (r == null || r.weightInt() == null) {
            String why = r == null ? "Select a layer and press “Show histograms”" : r.layer() + " has no weight (an activation probe)";
            weightInt.setChart(StudioCharts.histogram("Weights: " + why, "weight value", new double[] {0, 1}, new long[] {0}, null, null, false));
            weightFp.setChart(StudioCharts.histogram("Weights", "weight value", new double[] {0, 1}, new long[] {0}, null, null, false));
        } else {
            weightInt.setChart(histogram(r.weightInt()));
            weightFp.setChart(histogram(r.weightFp()));
        }
        updateActivations();
    }

    private void updateActivations() {
        Histograms.Histogram ai = vm.activation(false), af = vm.activation(true);
        if (ai == null) {
            actInt.setChart(StudioCharts.histogram("Input activations", "activation value", new double[] {0, 1}, new long[] {0}, null, null, false));
            actFp.setChart(StudioCharts.histogram("Input activations", "activation value", new double[] {0, 1}, new long[] {0}, null, null, false));
            return;
        }
        actInt.setChart(histogram(ai));
        actFp.setChart(histogram(af));
    }

    private org.jfree.chart.JFreeChart histogram(Histograms.Histogram h) {
        String when = Float.isNaN(h.timestep()) ? (h.tensor().equals("input") ? " · all timesteps" : "") : " · t = " + (int) h.timestep();
        String title = h.layer() + " " + h.tensor() + when;
        return StudioCharts.histogram(title, h.tensor() + " value", StudioViewModel.edges(h), h.counts(), StudioViewModel.toDouble(h.grid()),
                h.format() + (h.gridNote().isEmpty() ? "" : " (" + h.gridNote() + ")"), vm.logCountsProperty().get());
    }
}
