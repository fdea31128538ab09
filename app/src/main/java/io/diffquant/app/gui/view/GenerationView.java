package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.GenerationViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import javafx.beans.binding.Bindings;
import javafx.beans.binding.ObjectBinding;
import javafx.beans.property.ObjectProperty;
import javafx.embed.swing.SwingFXUtils;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.Label;
import javafx.scene.control.Slider;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TextField;
import javafx.scene.control.TitledPane;
import javafx.scene.control.ToggleButton;
import javafx.scene.control.Tooltip;
import javafx.scene.image.Image;
import javafx.scene.image.ImageView;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.StackPane;
import javafx.scene.layout.VBox;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.fx.ChartViewer;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.util.Locale;

/**
 * The generation panel bound to a {@link GenerationViewModel}: sampling parameters, "Generate" (FP32 sampling on the
 * worker, progress and cancel in the status bar), the FP32 grid beside the "baseline" and "current config" columns
 * (filled once quantization lands) and the difference heatmap slot, a slider scrubbing the denoising steps, and a
 * JFreeChart plot of how much x̂_0 changes per step.
 */
public final class GenerationView {
    private static final double IMAGE_WIDTH = 296;

    private final GenerationViewModel vm;
    private final StudioViewModel studio;
    private final BorderPane root = new BorderPane();
    private final ImageView fpView = pixelView("image-fp");
    private final ImageView baselineView = pixelView("image-baseline");
    private final ImageView currentView = pixelView("image-current");
    private final Slider stepSlider = new Slider(0, 0, 0);
    private final XYSeries changeSeries = new XYSeries("x̂₀ change per step (RMS)");
    private final ValueMarker stepMarker = new ValueMarker(0, new Color(200, 60, 60), new BasicStroke(1.5f));
    // strong references: bidirectional bindings to the spinners hold their partners weakly
    private final ObjectProperty<Integer> seedObj, countObj, stepsObj;
    private final ObjectProperty<Double> cfgObj;
    private final Button generate = new Button("Generate");

    public GenerationView(GenerationViewModel vm, StudioViewModel studio) {
        this.vm = vm;
        this.studio = studio;
        seedObj = vm.seedProperty().asObject();
        countObj = vm.imageCountProperty().asObject();
        stepsObj = vm.stepsProperty().asObject();
        cfgObj = vm.cfgScaleProperty().asObject();
        root.setId("generation-panel");
        root.setLeft(form());
        root.setCenter(results());
        bindImage(fpView, vm.fpFrameBinding());
        bindImage(baselineView, vm.baselineFrameBinding());
        bindImage(currentView, vm.currentFrameBinding());
    }

    public Node node() { return root; }
    public ImageView fpImageView() { return fpView; }
    public Slider stepSlider() { return stepSlider; }
    public Button generateButton() { return generate; }

    // ------------------------------------------------------------------ form

    private Node form() {
        GridPane g = new GridPane();
        g.setHgap(8);
        g.setVgap(8);
        g.setPadding(new Insets(10));
        Spinner<Integer> seed = intSpinner("gen-seed", 0, Integer.MAX_VALUE, seedObj);
        Spinner<Integer> count = intSpinner("gen-count", 1, GenerationViewModel.MAX_IMAGES, countObj);
        Spinner<Integer> steps = intSpinner("gen-steps", 1, GenerationViewModel.MAX_STEPS, stepsObj);
        Spinner<Double> cfg = new Spinner<>();
        SpinnerValueFactory.DoubleSpinnerValueFactory cf = new SpinnerValueFactory.DoubleSpinnerValueFactory(1.0, 50.0, 1.0, 0.25);
        cf.valueProperty().bindBidirectional(cfgObj);
        cfg.setValueFactory(cf);
        cfg.setEditable(true);
        cfg.setId("gen-cfg");
        cfg.setPrefWidth(110);
        cfg.disableProperty().bind(vm.classConditionalProperty().not());
        TextField labels = new TextField();
        labels.setId("gen-labels");
        labels.setPromptText("e.g. 0,1,2 (empty: cycle)");
        labels.setPrefColumnCount(12);
        labels.textProperty().bindBidirectional(vm.labelsProperty());
        labels.disableProperty().bind(vm.classConditionalProperty().not());
        labels.setTooltip(new Tooltip("Class labels, repeated to fill the batch; empty cycles through all classes"));
        Label classes = new Label();
        classes.textProperty().bind(Bindings.createStringBinding(() -> vm.classConditionalProperty().get()
                ? "classes 0.." + (vm.numClassesProperty().get() - 1) : "unconditional model", vm.classConditionalProperty(), vm.numClassesProperty()));
        classes.setStyle("-fx-text-fill: -fx-mid-text-color;");

        generate.setId("generate");
        generate.setDefaultButton(true);
        generate.setMaxWidth(Double.MAX_VALUE);
        generate.disableProperty().bind(studio.jobs().busyProperty().or(vm.modelProperty().isNull()));
        generate.setOnAction(e -> studio.generate());
        Button cancel = new Button("Cancel");
        cancel.setMaxWidth(Double.MAX_VALUE);
        cancel.disableProperty().bind(studio.jobs().busyProperty().not());
        cancel.setOnAction(e -> studio.cancelJob());

        int r = 0;
        g.addRow(r++, new Label("Seed"), seed);
        g.addRow(r++, new Label("Images"), count);
        g.addRow(r++, new Label("Labels"), labels);
        g.add(classes, 1, r++);
        g.addRow(r++, new Label("DDIM steps"), steps);
        g.addRow(r++, new Label("CFG scale"), cfg);
        g.add(generate, 0, r, 2, 1);
        r++;
        g.add(cancel, 0, r, 2, 1);
        TitledPane p = new TitledPane("FP32 sampling", g);
        p.setCollapsible(false);
        VBox box = new VBox(p);
        box.setPadding(new Insets(8));
        return box;
    }

    private static Spinner<Integer> intSpinner(String id, int min, int max, ObjectProperty<Integer> value) {
        Spinner<Integer> s = new Spinner<>();
        SpinnerValueFactory.IntegerSpinnerValueFactory f = new SpinnerValueFactory.IntegerSpinnerValueFactory(min, max, min);
        f.valueProperty().bindBidirectional(value);
        s.setValueFactory(f);
        s.setEditable(true);
        s.setId(id);
        s.setPrefWidth(110);
        return s;
    }

    // ------------------------------------------------------------------ results

    private Node results() {
        HBox columns = new HBox(16,
                column("FP32", fpView, "Press Generate"),
                column("Baseline (quantized)", baselineView, "Appears when a quantization baseline is sampled"),
                column("Current config", currentView, "Appears when the configuration in the layer table is sampled"));
        columns.setPadding(new Insets(8));

        stepSlider.setId("step-slider");
        stepSlider.setBlockIncrement(1);
        stepSlider.setMajorTickUnit(1);
        stepSlider.setMinorTickCount(0);
        stepSlider.setSnapToTicks(true);
        HBox.setHgrow(stepSlider, Priority.ALWAYS);
        stepSlider.maxProperty().bind(Bindings.createDoubleBinding(() -> {
            GenerationResult res = vm.fpResultProperty().get();
            return res == null ? 0.0 : Math.max(0, res.frames() - 1);
        }, vm.fpResultProperty()));
        stepSlider.disableProperty().bind(vm.fpResultProperty().isNull());
        stepSlider.valueProperty().addListener((o, a, v) -> {
            int k = (int) Math.round(v.doubleValue());
            if (k != vm.selectedFrameProperty().get()) {
                vm.followLatestProperty().set(false);
                vm.selectedFrameProperty().set(k);
            }
        });
        vm.selectedFrameProperty().addListener((o, a, v) -> {
            if (Math.round(stepSlider.getValue()) != v.intValue()) stepSlider.setValue(v.intValue());
            updateMarker();
        });
        Label stepLabel = new Label();
        stepLabel.setId("step-label");
        stepLabel.setMinWidth(170);
        stepLabel.textProperty().bind(Bindings.createStringBinding(() -> {
            GenerationResult res = vm.fpResultProperty().get();
            if (res == null || res.frames() == 0) return "no run yet";
            int k = Math.max(0, Math.min(vm.selectedFrameProperty().get(), res.frames() - 1));
            return String.format(Locale.ROOT, "step %d of %d · t = %d", res.frameStep(k) + 1, res.totalSteps(), res.frameTimestep(k));
        }, vm.fpResultProperty(), vm.selectedFrameProperty()));
        ToggleButton predX0 = new ToggleButton("show x̂₀");
        predX0.setTooltip(new Tooltip("On: the predicted clean image x̂₀ of the step; off: x_t after the step"));
        predX0.selectedProperty().bindBidirectional(vm.showPredX0Property());
        CheckBox follow = new CheckBox("follow");
        follow.setTooltip(new Tooltip("Jump to the newest step while sampling"));
        follow.selectedProperty().bindBidirectional(vm.followLatestProperty());
        HBox scrub = new HBox(10, new Label("Denoising step"), stepSlider, stepLabel, predX0, follow);
        scrub.setAlignment(Pos.CENTER_LEFT);
        scrub.setPadding(new Insets(4, 8, 4, 8));

        Label heat = new Label("Difference heatmap |current − FP32|\nappears with the first quantized run");
        heat.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-text-alignment: center;");
        StackPane heatBox = new StackPane(heat);
        heatBox.setId("heatmap-slot");
        heatBox.setPrefSize(IMAGE_WIDTH, 240);
        heatBox.setMinWidth(200);
        heatBox.setStyle("-fx-border-color: -fx-box-border; -fx-border-style: dashed;");

        ChartViewer chart = new ChartViewer(changeChart());
        chart.setId("change-chart");
        chart.setPrefSize(520, 240);
        chart.setMinWidth(300);
        HBox.setHgrow(chart, Priority.ALWAYS);
        vm.fpResultProperty().addListener((o, a, res) -> updateChart(res));
        HBox bottom = new HBox(16, heatBox, chart);
        bottom.setPadding(new Insets(8));
        bottom.setMinHeight(240);
        VBox.setVgrow(columns, Priority.ALWAYS);
        return new VBox(columns, scrub, bottom);
    }

    private static VBox column(String title, ImageView view, String placeholder) {
        Label t = new Label(title);
        t.setStyle("-fx-font-weight: bold;");
        Label ph = new Label(placeholder);
        ph.setWrapText(true);
        ph.setMaxWidth(IMAGE_WIDTH - 40);
        ph.setStyle("-fx-text-fill: #c8c8c8; -fx-text-alignment: center;");
        ph.visibleProperty().bind(view.imageProperty().isNull());
        StackPane frame = new StackPane(view, ph);
        // explicit sizes: the frame takes what the layout gives it and the image scales into it (no feedback loop)
        frame.setPrefSize(IMAGE_WIDTH, 220);
        frame.setMinSize(120, 100);
        frame.setMaxSize(Double.MAX_VALUE, Double.MAX_VALUE);
        frame.setStyle("-fx-background-color: #202020; -fx-background-radius: 4;");
        view.fitWidthProperty().bind(frame.widthProperty().subtract(8));
        view.fitHeightProperty().bind(frame.heightProperty().subtract(8));
        VBox.setVgrow(frame, Priority.ALWAYS);
        VBox box = new VBox(6, t, frame);
        box.setAlignment(Pos.TOP_CENTER);
        box.setMaxWidth(Double.MAX_VALUE);
        HBox.setHgrow(box, Priority.ALWAYS);
        return box;
    }

    private static ImageView pixelView(String id) {
        ImageView v = new ImageView();
        v.setId(id);
        v.setSmooth(false);   // nearest-neighbour enlargement of small samples
        v.setPreserveRatio(true);
        return v;
    }

    private static void bindImage(ImageView view, ObjectBinding<BufferedImage> frame) {
        frame.addListener((o, a, img) -> view.setImage(toFx(img)));
        view.setImage(toFx(frame.get()));
    }

    static Image toFx(BufferedImage img) { return img == null ? null : SwingFXUtils.toFXImage(img, null); }

    private JFreeChart changeChart() {
        JFreeChart c = ChartFactory.createXYLineChart(null, "step", "RMS change of x̂₀", new XYSeriesCollection(changeSeries),
                PlotOrientation.VERTICAL, true, true, false);
        XYPlot p = c.getXYPlot();
        p.setBackgroundPaint(Color.WHITE);
        p.setDomainGridlinePaint(new Color(220, 220, 220));
        p.setRangeGridlinePaint(new Color(220, 220, 220));
        p.addDomainMarker(stepMarker);
        c.setBackgroundPaint(new Color(244, 244, 244));
        return c;
    }

    private void updateChart(GenerationResult res) {
        changeSeries.clear();
        if (res == null) return;
        double[] ch = res.predX0Change();
        changeSeries.setNotify(false);
        for (int i = 0; i < ch.length; i++) changeSeries.add(i + 1, ch[i]);
        changeSeries.setNotify(true);
        updateMarker();
    }

    /** The chart's marker at the step of the selected frame (steps count from 1 on the axis). */
    private void updateMarker() {
        GenerationResult res = vm.fpResultProperty().get();
        if (res == null || res.frames() == 0) return;
        int k = Math.max(0, Math.min(vm.selectedFrameProperty().get(), res.frames() - 1));
        stepMarker.setValue(res.frameStep(k) + 1);
    }
}
