package io.diffquant.app.gui.view;

import io.diffquant.app.gui.charts.StudioCharts;
import io.diffquant.app.gui.vm.GenerationOutcome;
import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.GenerationViewModel;
import io.diffquant.app.gui.vm.Heatmaps;
import io.diffquant.app.gui.vm.QuantViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.engine.quant.preset.Presets;
import javafx.beans.binding.Bindings;
import javafx.beans.binding.ObjectBinding;
import javafx.beans.property.ObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.collections.FXCollections;
import javafx.collections.ListChangeListener;
import javafx.embed.swing.SwingFXUtils;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Label;
import javafx.scene.control.RadioButton;
import javafx.scene.control.ScrollPane;
import javafx.scene.control.Slider;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TableColumn;
import javafx.scene.control.TableView;
import javafx.scene.control.TextField;
import javafx.scene.control.TitledPane;
import javafx.scene.control.ToggleButton;
import javafx.scene.control.ToggleGroup;
import javafx.scene.control.Tooltip;
import javafx.scene.image.Image;
import javafx.scene.image.ImageView;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.StackPane;
import javafx.scene.layout.VBox;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.fx.ChartViewer;

import java.awt.image.BufferedImage;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * The generation panel bound to a {@link GenerationViewModel}: sampling parameters and the backend, "Generate" (the
 * FP32 model, the baseline method and the current configuration from the same noise and labels, calibrating what is not
 * calibrated yet; progress and cancel in the status bar), the three columns and the difference heatmap |config − FP32|,
 * one slider scrubbing the denoising steps of all of them, the metrics table (FID-FMNIST, PSNR, SSIM vs FP32) and a
 * plot of how much x̂_0 changes per step.
 */
public final class GenerationView {
    private static final double IMAGE_WIDTH = 240;

    private final GenerationViewModel vm;
    private final StudioViewModel studio;
    private final BorderPane root = new BorderPane();
    private final ImageView fpView = pixelView("image-fp");
    private final ImageView baselineView = pixelView("image-baseline");
    private final ImageView currentView = pixelView("image-current");
    private final ImageView heatmapView = pixelView("image-heatmap");
    private final Slider stepSlider = new Slider(0, 0, 0);
    private final JFreeChart changeChart = StudioCharts.lines(null, "step", "RMS change of x̂₀", false);
    private final TableView<GenerationOutcome.MetricsRow> metricsTable = new TableView<>();
    // strong references: bidirectional bindings to the spinners hold their partners weakly
    private final ObjectProperty<Integer> seedObj, countObj, stepsObj;
    private final ObjectProperty<Double> cfgObj;
    private final Button generate = new Button("Generate side by side");

    public GenerationView(GenerationViewModel vm, StudioViewModel studio) {
        this.vm = vm;
        this.studio = studio;
        seedObj = vm.seedProperty().asObject();
        countObj = vm.imageCountProperty().asObject();
        stepsObj = vm.stepsProperty().asObject();
        cfgObj = vm.cfgScaleProperty().asObject();
        root.setId("generation-panel");
        ScrollPane left = new ScrollPane(form());
        left.setFitToWidth(true);
        left.setHbarPolicy(ScrollPane.ScrollBarPolicy.NEVER);
        left.setPrefWidth(290);
        left.setMinWidth(270);
        root.setLeft(left);
        root.setCenter(results());
        bindImage(fpView, vm.fpFrameBinding());
        bindImage(baselineView, vm.baselineFrameBinding());
        bindImage(currentView, vm.currentFrameBinding());
        bindImage(heatmapView, vm.heatmapFrameBinding());
    }

    public Node node() { return root; }
    public ImageView fpImageView() { return fpView; }
    public ImageView currentImageView() { return currentView; }
    public ImageView heatmapImageView() { return heatmapView; }
    public Slider stepSlider() { return stepSlider; }
    public Button generateButton() { return generate; }
    public TableView<GenerationOutcome.MetricsRow> metricsTable() { return metricsTable; }
    public JFreeChart changeChart() { return changeChart; }

    // ------------------------------------------------------------------ form

    private Node form() {
        GridPane g = new GridPane();
        g.setHgap(8);
        g.setVgap(8);
        g.setPadding(new Insets(10));
        javafx.scene.layout.ColumnConstraints labelsCol = new javafx.scene.layout.ColumnConstraints();
        labelsCol.setMinWidth(javafx.scene.layout.Region.USE_PREF_SIZE);
        g.getColumnConstraints().addAll(labelsCol, new javafx.scene.layout.ColumnConstraints());
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
        labels.setPrefColumnCount(10);
        labels.textProperty().bindBidirectional(vm.labelsProperty());
        labels.disableProperty().bind(vm.classConditionalProperty().not());
        labels.setTooltip(new Tooltip("Class labels, repeated to fill the batch; empty cycles through all classes"));
        Label classes = new Label();
        classes.textProperty().bind(Bindings.createStringBinding(() -> vm.classConditionalProperty().get()
                ? "classes 0.." + (vm.numClassesProperty().get() - 1) : "unconditional model", vm.classConditionalProperty(), vm.numClassesProperty()));
        classes.setStyle("-fx-text-fill: -fx-mid-text-color;");
        java.util.Map<String, String> choices = GenerationViewModel.backendChoices();
        ComboBox<String> backend = new ComboBox<>(FXCollections.observableArrayList(choices.keySet()));
        backend.setId("gen-backend");
        backend.valueProperty().bindBidirectional(vm.backendProperty());
        StringBuilder tip = new StringBuilder("Execution backend of every column (shown with the result):");
        choices.forEach((id, d) -> tip.append("\n").append(id).append(": ").append(d));
        backend.setTooltip(new Tooltip(tip.toString()));
        backend.setCellFactory(lv -> new javafx.scene.control.ListCell<>() {
            @Override protected void updateItem(String id, boolean empty) {
                super.updateItem(id, empty);
                setText(empty || id == null ? null : id + (choices.getOrDefault(id, "").startsWith("not available") ? " (falls back)" : ""));
            }
        });
        backend.setMaxWidth(Double.MAX_VALUE);
        backend.setPrefWidth(150);

        CheckBox baselineOn = new CheckBox("Baseline");
        baselineOn.setId("gen-baseline-on");
        baselineOn.selectedProperty().bindBidirectional(vm.baselineEnabledProperty());
        ComboBox<String> baselinePreset = new ComboBox<>(FXCollections.observableArrayList(Presets.names()));
        baselinePreset.setPrefWidth(130);
        baselinePreset.setId("gen-baseline-preset");
        QuantViewModel q = studio.quant();
        baselinePreset.setValue(q.baselineProperty().get().preset());
        baselinePreset.valueProperty().addListener((o, a, p) -> { if (p != null) q.baselineProperty().set(q.choiceFor(p)); });
        q.baselineProperty().addListener((o, a, m) -> { if (m != null && !m.preset().equals(baselinePreset.getValue())) baselinePreset.setValue(m.preset()); });
        baselinePreset.disableProperty().bind(vm.baselineEnabledProperty().not());
        baselinePreset.setTooltip(new Tooltip("The baseline method as its preset makes it (with the method bar's bits and formats)"));
        Label baselineLabel = new Label();
        baselineLabel.textProperty().bind(Bindings.createStringBinding(() -> q.baselineProperty().get().label(), q.baselineProperty()));
        baselineLabel.setWrapText(true);
        baselineLabel.setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.9em;");
        CheckBox currentOn = new CheckBox("Current config");
        currentOn.setId("gen-current-on");
        currentOn.selectedProperty().bindBidirectional(vm.currentEnabledProperty());

        generate.setId("generate");
        generate.setDefaultButton(true);
        generate.setMaxWidth(Double.MAX_VALUE);
        generate.disableProperty().bind(studio.jobs().busyProperty().or(vm.modelProperty().isNull()));
        generate.setOnAction(e -> studio.generate());
        generate.setTooltip(new Tooltip("Sample FP32, the baseline and the current configuration from the same noise and labels"
                + " (configurations not calibrated yet are calibrated first)"));
        Button fpOnly = new Button("FP32 only");
        fpOnly.setId("generate-fp");
        fpOnly.setMaxWidth(Double.MAX_VALUE);
        fpOnly.disableProperty().bind(studio.jobs().busyProperty().or(vm.modelProperty().isNull()));
        fpOnly.setOnAction(e -> studio.generateFp());
        Button cancel = new Button("Cancel");
        cancel.setId("gen-cancel");
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
        g.addRow(r++, new Label("Backend"), backend);
        g.addRow(r++, baselineOn, baselinePreset);
        g.add(baselineLabel, 0, r++, 2, 1);
        g.add(currentOn, 0, r++, 2, 1);
        g.add(generate, 0, r++, 2, 1);
        g.add(fpOnly, 0, r++, 2, 1);
        g.add(cancel, 0, r, 2, 1);
        TitledPane p = new TitledPane("Sampling", g);
        p.setCollapsible(false);
        Label notes = new Label();
        notes.setId("gen-notes");
        notes.setWrapText(true);
        notes.setStyle("-fx-text-fill: -fx-mid-text-color;");
        vm.notes().addListener((ListChangeListener<String>) c -> notes.setText(String.join("\n", vm.notes())));
        VBox box = new VBox(8, p, notes);
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
        Label baselineTitle = new Label();
        baselineTitle.textProperty().bind(Bindings.createStringBinding(() -> "Baseline: " + studio.quant().baselineProperty().get().preset(),
                studio.quant().baselineProperty()));
        baselineTitle.setTooltip(new Tooltip());
        baselineTitle.getTooltip().textProperty().bind(Bindings.createStringBinding(() -> studio.quant().baselineProperty().get().label(),
                studio.quant().baselineProperty()));
        Label currentTitle = new Label();
        currentTitle.textProperty().bind(Bindings.createStringBinding(() -> "Current: " + studio.layers().method().preset()
                + (studio.quant().currentConfigProperty().get() == null ? "" : " ✓"), studio.layers().methodProperty(), studio.quant().currentConfigProperty()));
        currentTitle.setTooltip(new Tooltip());
        currentTitle.getTooltip().textProperty().bind(Bindings.createStringBinding(() -> "The layer table's configuration: "
                + studio.layers().method().label() + " and its edits", studio.layers().methodProperty()));
        GridPane columns = new GridPane();
        columns.setHgap(12);
        columns.addRow(0, column(new Label("FP32"), fpView, "Press Generate"),
                column(baselineTitle, baselineView, "The baseline method's samples"),
                column(currentTitle, currentView, "The samples of the layer table's configuration"),
                heatmapColumn());
        for (int i = 0; i < 4; i++) {
            javafx.scene.layout.ColumnConstraints cc = new javafx.scene.layout.ColumnConstraints();
            cc.setPercentWidth(25);
            cc.setHgrow(Priority.ALWAYS);
            columns.getColumnConstraints().add(cc);
        }
        javafx.scene.layout.RowConstraints rc = new javafx.scene.layout.RowConstraints();
        rc.setVgrow(Priority.ALWAYS);
        columns.getRowConstraints().add(rc);
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
        predX0.setId("show-predx0");
        predX0.setTooltip(new Tooltip("On: the predicted clean image x̂₀ of the step; off: x_t after the step"));
        predX0.selectedProperty().bindBidirectional(vm.showPredX0Property());
        CheckBox follow = new CheckBox("follow");
        follow.setTooltip(new Tooltip("Jump to the newest step while sampling"));
        follow.selectedProperty().bindBidirectional(vm.followLatestProperty());
        HBox scrub = new HBox(10, new Label("Denoising step"), stepSlider, stepLabel, predX0, follow);
        scrub.setAlignment(Pos.CENTER_LEFT);
        scrub.setPadding(new Insets(4, 8, 4, 8));

        ChartViewer chart = new ChartViewer(changeChart);
        chart.setId("change-chart");
        chart.setPrefSize(380, 220);
        chart.setMinWidth(240);
        HBox.setHgrow(chart, Priority.ALWAYS);
        vm.outcomeProperty().addListener((o, a, res) -> updateChart());
        vm.fpResultProperty().addListener((o, a, res) -> updateChart());
        Node metrics = buildMetricsTable();
        HBox bottom = new HBox(12, metrics, chart);
        bottom.setPadding(new Insets(8));
        bottom.setMinHeight(200);
        bottom.setPrefHeight(230);
        VBox.setVgrow(columns, Priority.ALWAYS);
        return new VBox(columns, scrub, bottom);
    }

    private Node heatmapColumn() {
        Label title = new Label("Difference");
        title.setTooltip(new Tooltip("|config − FP32| per pixel (mean over channels), of the current config or the baseline"));
        title.setStyle("-fx-font-weight: bold;");
        ToggleGroup which = new ToggleGroup();
        RadioButton ofCurrent = new RadioButton("current");
        ofCurrent.setMinWidth(javafx.scene.layout.Region.USE_PREF_SIZE);
        ofCurrent.setId("heatmap-current");
        RadioButton ofBaseline = new RadioButton("baseline");
        ofBaseline.setMinWidth(javafx.scene.layout.Region.USE_PREF_SIZE);
        ofBaseline.setId("heatmap-baseline");
        ofCurrent.setToggleGroup(which);
        ofBaseline.setToggleGroup(which);
        ofCurrent.setSelected(vm.heatmapOfCurrentProperty().get());
        ofBaseline.setSelected(!vm.heatmapOfCurrentProperty().get());
        which.selectedToggleProperty().addListener((o, a, t) -> vm.heatmapOfCurrentProperty().set(t == ofCurrent));
        ImageView bar = new ImageView(SwingFXUtils.toFXImage(Heatmaps.colorBar(160, 10), null));
        Label max = new Label();
        max.setId("heatmap-max");
        max.textProperty().bind(Bindings.createStringBinding(() -> {
            double m = vm.heatmapMaxBinding().get();
            return Double.isNaN(m) ? "" : String.format(Locale.ROOT, "0 … %.3g", m);
        }, vm.heatmapMaxBinding()));
        HBox legend = new HBox(6, bar, max);
        legend.setAlignment(Pos.CENTER);
        title.setMinWidth(0);
        HBox head = new HBox(6, title, ofCurrent, ofBaseline);
        head.setAlignment(Pos.CENTER);
        VBox box = column(head, heatmapView, "Appears with the first quantized run");
        box.getChildren().add(legend);
        return box;
    }

    private Node buildMetricsTable() {
        metricsTable.setId("metrics-table");
        metricsTable.setItems(vm.metrics());
        metricsTable.setPlaceholder(new Label("Metrics appear after a run"));
        metricsTable.setColumnResizePolicy(TableView.CONSTRAINED_RESIZE_POLICY_FLEX_LAST_COLUMN);
        metricsTable.getColumns().add(textColumn("Column", 130, GenerationOutcome.MetricsRow::column));
        metricsTable.getColumns().add(numberColumn("FID-FMNIST", 84, r -> r.fid(), "%.2f"));
        metricsTable.getColumns().add(numberColumn("PSNR dB", 70, r -> r.psnr(), "%.2f"));
        metricsTable.getColumns().add(numberColumn("SSIM", 62, r -> r.ssim(), "%.4f"));
        metricsTable.getColumns().add(numberColumn("MSE", 62, r -> r.mse(), "%.4f"));
        metricsTable.getColumns().add(numberColumn("max |Δ|", 62, r -> r.maxAbs(), "%.3f"));
        metricsTable.getColumns().add(numberColumn("W bits", 58, r -> r.avgWeightBits(), "%.2f"));
        metricsTable.getColumns().add(numberColumn("time s", 56, r -> r.seconds(), "%.1f"));
        metricsTable.setPrefWidth(600);
        metricsTable.setMinWidth(420);
        HBox.setHgrow(metricsTable, Priority.SOMETIMES);
        Tooltip t = new Tooltip("Versus the FP32 images from the same noise and labels. FID-FMNIST uses the product's own "
                + "Fashion-MNIST classifier (not Inception) and is noisy for a few images.");
        t.setWrapText(true);
        t.setMaxWidth(420);
        metricsTable.setTooltip(t);
        return metricsTable;
    }

    private static TableColumn<GenerationOutcome.MetricsRow, String> textColumn(String title, double width,
                                                                               Function<GenerationOutcome.MetricsRow, String> f) {
        TableColumn<GenerationOutcome.MetricsRow, String> c = new TableColumn<>(title);
        c.setPrefWidth(width);
        c.setCellValueFactory(cd -> new ReadOnlyObjectWrapper<>(f.apply(cd.getValue())));
        return c;
    }

    private static TableColumn<GenerationOutcome.MetricsRow, String> numberColumn(String title, double width,
                                                                                 java.util.function.ToDoubleFunction<GenerationOutcome.MetricsRow> f, String fmt) {
        TableColumn<GenerationOutcome.MetricsRow, String> c = new TableColumn<>(title);
        c.setPrefWidth(width);
        c.setStyle("-fx-alignment: CENTER-RIGHT;");
        c.setCellValueFactory(cd -> {
            double v = f.applyAsDouble(cd.getValue());
            return new ReadOnlyObjectWrapper<>(Double.isNaN(v) ? "–" : Double.isInfinite(v) ? "∞" : String.format(Locale.ROOT, fmt, v));
        });
        return c;
    }

    private static VBox column(Node title, ImageView view, String placeholder) {
        if (title instanceof Label l) {
            l.setStyle("-fx-font-weight: bold;");
            l.setMinWidth(0);
        }
        Label ph = new Label(placeholder);
        ph.setWrapText(true);
        ph.setMaxWidth(IMAGE_WIDTH - 40);
        ph.setStyle("-fx-text-fill: #c8c8c8; -fx-text-alignment: center;");
        ph.visibleProperty().bind(view.imageProperty().isNull());
        StackPane frame = new StackPane(view, ph);
        // explicit sizes: the frame takes what the layout gives it and the image scales into it (no feedback loop)
        frame.setPrefSize(IMAGE_WIDTH, 200);
        frame.setMinSize(60, 100);
        frame.setMaxSize(Double.MAX_VALUE, Double.MAX_VALUE);
        frame.setStyle("-fx-background-color: #202020; -fx-background-radius: 4;");
        view.fitWidthProperty().bind(frame.widthProperty().subtract(8));
        view.fitHeightProperty().bind(frame.heightProperty().subtract(8));
        VBox.setVgrow(frame, Priority.ALWAYS);
        VBox box = new VBox(6, title, frame);
        box.setAlignment(Pos.TOP_CENTER);
        box.setMaxWidth(Double.MAX_VALUE);
        box.setMinWidth(0);
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

    /** The x̂_0 change per step of every column so far. */
    private void updateChart() {
        StudioCharts.batch(changeChart, () -> {
            StudioCharts.setSeries(changeChart, changeSeries(vm));
            placeMarker();
        });
    }

    /** The series of the x̂_0-change plot: one per distinct column run so far. */
    public static List<StudioCharts.Series> changeSeries(GenerationViewModel vm) {
        return StudioCharts.changeSeries(java.util.Arrays.asList(vm.fpResultProperty().get(), vm.baselineResultProperty().get(),
                vm.currentResultProperty().get()));
    }

    /** The chart's marker at the step of the selected frame (steps count from 1 on the axis). */
    private void updateMarker() { StudioCharts.batch(changeChart, this::placeMarker); }

    private void placeMarker() {
        GenerationResult res = vm.fpResultProperty().get();
        if (res == null || res.frames() == 0) {
            StudioCharts.setDomainMarker(changeChart, Double.NaN);
            return;
        }
        int k = Math.max(0, Math.min(vm.selectedFrameProperty().get(), res.frames() - 1));
        StudioCharts.setDomainMarker(changeChart, res.frameStep(k) + 1);
    }
}
