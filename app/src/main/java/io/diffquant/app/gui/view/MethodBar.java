package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.ErrorReport;
import io.diffquant.app.gui.vm.MethodChoice;
import io.diffquant.app.gui.vm.QuantViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.Presets;
import javafx.beans.binding.Bindings;
import javafx.beans.property.ObjectProperty;
import javafx.collections.FXCollections;
import javafx.geometry.Insets;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.ButtonType;
import javafx.scene.control.CheckBox;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Control;
import javafx.scene.control.Dialog;
import javafx.scene.control.Label;
import javafx.scene.control.MenuButton;
import javafx.scene.control.MenuItem;
import javafx.scene.control.Separator;
import javafx.scene.control.Spinner;
import javafx.scene.control.SpinnerValueFactory;
import javafx.scene.control.TextField;
import javafx.scene.control.ToolBar;
import javafx.scene.control.Tooltip;
import javafx.scene.layout.GridPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.Region;
import javafx.stage.Window;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The method bar above the panels: the configuration's method, the bits and format family the preset buttons pass,
 * one button per preset (applied in one click as an undoable edit), the preset options dialog, "Calibrate" (with its
 * state) and "Bit budget...". Everything it does goes through {@link StudioViewModel} / {@link QuantViewModel}.
 */
public final class MethodBar {
    private final StudioViewModel studio;
    private final QuantViewModel quant;
    private final ToolBar bar = new ToolBar();
    private final ToolBar settingsBar = new ToolBar();
    private final javafx.scene.layout.VBox box = new javafx.scene.layout.VBox(bar, settingsBar);
    private final HBox presetButtons = new HBox(4);
    // strong references: bidirectional bindings hold their partners weakly
    private final ObjectProperty<Integer> wBitsObj, aBitsObj, calibImagesObj;
    private Runnable budgetAction = () -> { };

    public MethodBar(StudioViewModel studio) {
        this.studio = studio;
        this.quant = studio.quant();
        wBitsObj = quant.wBitsProperty().asObject();
        aBitsObj = quant.aBitsProperty().asObject();
        calibImagesObj = quant.calibrationImagesProperty().asObject();
        bar.setId("method-bar");

        Label method = new Label();
        method.setId("method-label");
        method.setStyle("-fx-font-weight: bold;");
        method.textProperty().bind(Bindings.createStringBinding(() -> "Method: " + studio.layers().method().label(),
                studio.layers().methodProperty()));
        method.setMinWidth(0);
        method.setMaxWidth(Double.MAX_VALUE);
        method.setTextOverrun(javafx.scene.control.OverrunStyle.ELLIPSIS);
        method.setTooltip(new Tooltip());
        method.getTooltip().textProperty().bind(method.textProperty());

        Spinner<Integer> wb = bits("preset-wbits", wBitsObj);
        Spinner<Integer> ab = bits("preset-abits", aBitsObj);
        ComboBox<String> family = new ComboBox<>(FXCollections.observableArrayList("default", "int", "fp"));
        family.setId("preset-family");
        family.valueProperty().bindBidirectional(quant.formatFamilyProperty());
        family.setTooltip(new Tooltip("Format family the preset uses: its own default, INT-b asymmetric or FP4DiT ExMy"));

        rebuildPresetButtons();
        MenuButton options = new MenuButton("Options");
        options.setId("preset-options");
        options.setTooltip(new Tooltip("Further options of a preset (docs/methods.md), used when its button is pressed"));
        for (String p : Presets.names()) {
            MenuItem item = new MenuItem(p + "...");
            item.setOnAction(e -> editOptions(p));
            options.getItems().add(item);
        }

        Button calibrate = new Button("Calibrate");
        calibrate.setId("calibrate");
        calibrate.setTooltip(new Tooltip("Calibrate the current configuration (the method's calibration data, weight ranges,"
                + " reconstruction, activation ranges) on the worker"));
        calibrate.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        calibrate.setOnAction(e -> studio.calibrateCurrent());
        Spinner<Integer> calibImages = new Spinner<>();
        SpinnerValueFactory.IntegerSpinnerValueFactory cf = new SpinnerValueFactory.IntegerSpinnerValueFactory(0, 1024, 0, 8);
        cf.valueProperty().bindBidirectional(calibImagesObj);
        cf.setConverter(calibrationImagesConverter(cf::getValue));
        calibImages.setValueFactory(cf);
        calibImages.setEditable(true);
        calibImages.setPrefWidth(86);
        calibImages.setId("calibration-images");
        calibImages.setTooltip(new Tooltip("Images of the calibration data (0 = the method's default, e.g. 32 for q-diffusion); fewer calibrate faster"));
        Label state = new Label();
        state.setId("calibration-state");
        state.textProperty().bind(Bindings.createStringBinding(() -> quant.currentConfigProperty().get() != null
                ? "✓ calibrated" : "not calibrated", quant.currentConfigProperty()));
        state.styleProperty().bind(Bindings.createStringBinding(() -> quant.currentConfigProperty().get() != null
                ? "-fx-text-fill: #2e7d32;" : "-fx-text-fill: -fx-mid-text-color;", quant.currentConfigProperty()));
        Button budget = new Button("Bit budget...");
        budget.setId("bit-budget");
        budget.setTooltip(new Tooltip("Assign formats under an average-bits budget (greedy by per-layer sensitivity, or Q-DiT's"
                + " group-size search) and review the result as a diff before applying it"));
        budget.disableProperty().bind(studio.jobs().busyProperty().or(studio.modelProperty().isNull()));
        budget.setOnAction(e -> budgetAction.run());

        Label presets = new Label("Presets");
        presets.setStyle("-fx-font-weight: bold;");
        bar.getItems().addAll(presets, presetButtons, options, new Separator());
        HBox methodBox = new HBox(method);
        methodBox.setAlignment(javafx.geometry.Pos.CENTER_LEFT);
        HBox.setHgrow(methodBox, Priority.ALWAYS);
        HBox.setHgrow(method, Priority.ALWAYS);
        methodBox.setMinWidth(80);
        methodBox.setMaxWidth(Double.MAX_VALUE);
        bar.getItems().add(methodBox);
        bar.widthProperty().addListener((o, a, w) -> methodBox.setPrefWidth(Math.max(80, w.doubleValue() - 700)));
        settingsBar.getItems().addAll(new Label("W bits"), wb, new Label("A bits"), ab, new Label("Formats"), family, new Separator(),
                new Label("Calib. images"), calibImages, calibrate, state, new Separator(), budget);
    }

    public Node node() { return box; }
    public void setBudgetAction(Runnable r) { budgetAction = r; }

    /** One button per preset of the engine's registry (called again when presets are added at run time). */
    public void rebuildPresetButtons() {
        presetButtons.getChildren().clear();
        for (String p : Presets.names()) {
            Button b = new Button(p);
            b.setId("preset-" + p);
            Preset preset = Presets.byName(p);
            Tooltip t = new Tooltip(preset.description());
            t.setWrapText(true);
            t.setMaxWidth(520);
            b.setTooltip(t);
            b.disableProperty().bind(studio.modelProperty().isNull());
            b.setOnAction(e -> studio.applyPreset(quant.choiceFor(p)));
            presetButtons.getChildren().add(b);
        }
    }

    private static Spinner<Integer> bits(String id, ObjectProperty<Integer> value) {
        Spinner<Integer> s = new Spinner<>();
        SpinnerValueFactory.IntegerSpinnerValueFactory f = new SpinnerValueFactory.IntegerSpinnerValueFactory(2, 8, 4);
        f.valueProperty().bindBidirectional(value);
        s.setValueFactory(f);
        s.setEditable(true);
        s.setId(id);
        s.setPrefWidth(62);
        return s;
    }

    /** A dialog with one field per option of the preset (besides bits and formats, which the bar sets). */
    private void editOptions(String presetName) {
        Preset p = Presets.byName(presetName);
        Map<String, Object> current = quant.extraOptions(presetName);
        Dialog<Map<String, Object>> d = new Dialog<>();
        Window owner = bar.getScene() == null ? null : bar.getScene().getWindow();
        if (owner != null) d.initOwner(owner);
        d.setTitle("Options of " + presetName);
        d.setHeaderText(p.description());
        GridPane g = new GridPane();
        g.setHgap(8);
        g.setVgap(6);
        g.setPadding(new Insets(10));
        Map<String, Control> fields = new LinkedHashMap<>();
        int r = 0;
        for (OptionDef o : p.options()) {
            if (List.of("w_bits", "a_bits", "w_format", "a_format").contains(o.name())) continue;
            Object v = current.containsKey(o.name()) ? current.get(o.name()) : o.defaultValue();
            Control c;
            if (o.type() == OptionDef.Type.BOOLEAN) {
                CheckBox cb = new CheckBox();
                cb.setSelected(Boolean.TRUE.equals(v));
                c = cb;
            } else if (!o.choices().isEmpty()) {
                ComboBox<String> cb = new ComboBox<>(FXCollections.observableArrayList(o.choices()));
                cb.setValue(v == null ? null : v.toString());
                c = cb;
            } else {
                TextField tf = new TextField(v == null ? "" : v.toString());
                tf.setPrefColumnCount(12);
                c = tf;
            }
            c.setTooltip(new Tooltip(o.help()));
            Label l = new Label(o.name());
            l.setTooltip(new Tooltip(o.description()));
            g.addRow(r++, l, c);
            fields.put(o.name(), c);
        }
        if (fields.isEmpty()) g.addRow(0, new Label("This preset has no options besides bits and formats."));
        d.getDialogPane().setContent(g);
        d.getDialogPane().getButtonTypes().addAll(ButtonType.OK, ButtonType.CANCEL);
        d.setResultConverter(bt -> {
            if (bt != ButtonType.OK) return null;
            Map<String, Object> out = new LinkedHashMap<>();
            for (OptionDef o : p.options()) {
                Control c = fields.get(o.name());
                if (c == null) continue;
                Object v = c instanceof CheckBox cb ? (Object) cb.isSelected() : c instanceof ComboBox<?> cb ? cb.getValue()
                        : ((TextField) c).getText().trim();
                if (v == null || (v instanceof String s && s.isEmpty())) continue;
                if (!v.equals(o.defaultValue()) && !(o.defaultValue() != null && v.toString().equals(o.defaultValue().toString())))
                    out.put(o.name(), v);
            }
            return out;
        });
        d.showAndWait().ifPresent(opts -> {
            try {
                quant.setExtraOptions(presetName, opts);
                MethodChoice m = quant.choiceFor(presetName);
                studio.statusProperty().set("Options of " + presetName + " set: " + m.label() + " (press " + presetName + " to apply)");
            } catch (RuntimeException e) {
                studio.reportError(ErrorReport.of("Invalid preset option", presetName, e));
            }
        });
    }

    /**
     * The calibration-images spinner's text: 0 (the method's own count) reads "default"; typing "default" or nothing
     * gives 0, a number is clamped to [0, 1024], anything else keeps the {@code current} value.
     */
    static javafx.util.StringConverter<Integer> calibrationImagesConverter(java.util.function.Supplier<Integer> current) {
        return new javafx.util.StringConverter<>() {
            @Override public String toString(Integer n) { return n == null || n == 0 ? "default" : Integer.toString(n); }
            @Override public Integer fromString(String s) {
                String t = s == null ? "" : s.strip();
                if (t.isEmpty() || t.equalsIgnoreCase("default")) return 0;
                try {
                    return Math.max(0, Math.min(1024, Integer.parseInt(t)));
                } catch (NumberFormatException e) {
                    return current.get();
                }
            }
        };
    }
}
