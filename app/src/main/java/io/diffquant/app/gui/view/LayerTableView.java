package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.ErrorReport;
import io.diffquant.app.gui.vm.Formats;
import io.diffquant.app.gui.vm.LayerQuantSpec;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.LayerTableViewModel;
import io.diffquant.engine.model.LayerKind;
import javafx.beans.binding.Bindings;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.beans.value.ObservableValue;
import javafx.collections.FXCollections;
import javafx.collections.ObservableList;
import javafx.collections.transformation.SortedList;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.Node;
import javafx.scene.control.Button;
import javafx.scene.control.CheckBox;
import javafx.scene.control.ComboBox;
import javafx.scene.control.Label;
import javafx.scene.control.ProgressBar;
import javafx.scene.control.SelectionMode;
import javafx.scene.control.Separator;
import javafx.scene.control.TableCell;
import javafx.scene.control.TableColumn;
import javafx.scene.control.TableView;
import javafx.scene.control.TextField;
import javafx.scene.control.ToolBar;
import javafx.scene.control.Tooltip;
import javafx.scene.control.cell.ComboBoxTableCell;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.HBox;
import javafx.scene.layout.Priority;
import javafx.scene.layout.Region;
import javafx.scene.layout.VBox;
import javafx.util.StringConverter;
import javafx.util.converter.DefaultStringConverter;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * The layer table bound to a {@link LayerTableViewModel}: filter bar (glob, kind, temporal), bulk-edit bar for the
 * selected rows, editable format/granularity cells (an edit on a row of a multi-selection applies to the whole
 * selection), undo/redo, and the totals line.
 */
public final class LayerTableView {
    private final LayerTableViewModel vm;
    private final Consumer<ErrorReport> errors;
    private final TableView<LayerRow> table = new TableView<>();
    private final BorderPane root = new BorderPane();

    public LayerTableView(LayerTableViewModel vm, Consumer<ErrorReport> errors) {
        this.vm = vm;
        this.errors = errors;
        SortedList<LayerRow> sorted = new SortedList<>(vm.visibleRows());
        sorted.comparatorProperty().bind(table.comparatorProperty());
        table.setItems(sorted);
        table.setId("layer-table");
        table.setEditable(true);
        table.getSelectionModel().setSelectionMode(SelectionMode.MULTIPLE);
        table.setPlaceholder(new Label("No layers match the filter"));
        table.setColumnResizePolicy(TableView.UNCONSTRAINED_RESIZE_POLICY);
        table.getColumns().addAll(List.of(
                textColumn("Layer", 220, LayerRow::name),
                textColumn("Type", 80, r -> r.kind().name().toLowerCase(Locale.ROOT)),
                textColumn("Shape", 95, LayerRow::shapeText),
                countColumn(),
                textColumn("Temporal", 60, r -> r.temporal() ? "✓" : ""),
                textColumn("Block", 75, LayerRow::block),
                formatColumn("W format", "col-wformat", true),
                specColumn("W bits", 50, r -> r.weightQuantizable() ? Integer.toString(r.weightBits()) : ""),
                granularityColumn("W gran.", true),
                formatColumn("A format", "col-aformat", false),
                specColumn("A bits", 50, r -> r.activationQuantizable() ? Integer.toString(r.activationBits()) : ""),
                granularityColumn("A gran.", false),
                choiceColumn("A calib.", "col-amode", 95, Formats.ACTIVATION_MODES, LayerRow::activationQuantizable,
                        r -> r.spec().quantizesActivation() ? r.spec().activationMode() : "", (rows, v) -> vm.setActivationMode(rows, v)),
                choiceColumn("A range", "col-arange", 80, Formats.RANGES, LayerRow::activationQuantizable,
                        r -> r.spec().quantizesActivation() && !"dynamic".equals(r.spec().activationMode()) ? r.spec().activationRange() : "",
                        (rows, v) -> vm.setRange(rows, false, v)),
                choiceColumn("W range", "col-wrange", 80, Formats.RANGES, LayerRow::weightQuantizable,
                        r -> r.spec().quantizesWeight() ? r.spec().weightRange() : "", (rows, v) -> vm.setRange(rows, true, v)),
                avgBitsColumn(),
                sensitivityColumn(),
                enabledColumn()));
        VBox top = new VBox(filterBar(), bulkBar());
        root.setTop(top);
        root.setCenter(table);
        root.setBottom(totals());
    }

    public Node node() { return root; }
    public TableView<LayerRow> table() { return table; }

    /** Selected rows (the bulk-edit targets). */
    public List<LayerRow> selectedRows() { return new ArrayList<>(table.getSelectionModel().getSelectedItems()); }

    /** The rows an edit of {@code row} applies to: the selection if the row is part of a multi-selection, else the row. */
    private List<LayerRow> targetsFor(LayerRow row) {
        List<LayerRow> sel = selectedRows();
        return sel.size() > 1 && sel.contains(row) ? sel : List.of(row);
    }

    private void run(Runnable edit) {
        try {
            edit.run();
        } catch (RuntimeException e) {
            errors.accept(ErrorReport.of("Invalid layer setting", "", e));
        }
        table.refresh();
    }

    // ------------------------------------------------------------------ columns

    private TableColumn<LayerRow, String> textColumn(String title, double width, Function<LayerRow, String> f) {
        TableColumn<LayerRow, String> c = new TableColumn<>(title);
        c.setPrefWidth(width);
        c.setEditable(false);
        c.setCellValueFactory(cd -> new ReadOnlyObjectWrapper<>(f.apply(cd.getValue())));
        return c;
    }

    private TableColumn<LayerRow, Long> countColumn() {
        TableColumn<LayerRow, Long> c = new TableColumn<>("Params");
        c.setPrefWidth(80);
        c.setEditable(false);
        c.setCellValueFactory(cd -> new ReadOnlyObjectWrapper<>(cd.getValue().parameterCount()));
        c.setCellFactory(col -> new TableCell<>() {
            @Override protected void updateItem(Long v, boolean empty) {
                super.updateItem(v, empty);
                setText(empty || v == null || v == 0 ? "" : String.format(Locale.ROOT, "%,d", v));
                setAlignment(Pos.CENTER_RIGHT);
            }
        });
        return c;
    }

    /** A read-only column that follows the row's spec. */
    private TableColumn<LayerRow, String> specColumn(String title, double width, Function<LayerRow, String> f) {
        TableColumn<LayerRow, String> c = new TableColumn<>(title);
        c.setPrefWidth(width);
        c.setEditable(false);
        c.setCellValueFactory(cd -> specBinding(cd.getValue(), f));
        return c;
    }

    private static ObservableValue<String> specBinding(LayerRow r, Function<LayerRow, String> f) {
        return Bindings.createStringBinding(() -> f.apply(r), r.specProperty());
    }

    private TableColumn<LayerRow, String> formatColumn(String title, String id, boolean weight) {
        TableColumn<LayerRow, String> c = new TableColumn<>(title);
        c.setId(id);
        c.setPrefWidth(105);
        Predicate<LayerRow> applicable = weight ? LayerRow::weightQuantizable : LayerRow::activationQuantizable;
        c.setCellValueFactory(cd -> specBinding(cd.getValue(), r -> applicable.test(r)
                ? (weight ? r.spec().weightFormat() : r.spec().activationFormat()) : ""));
        ObservableList<String> choices = FXCollections.observableArrayList(Formats.formatChoices());
        c.setCellFactory(col -> editableCell(choices, applicable));
        c.setOnEditCommit(ev -> {
            LayerRow row = ev.getRowValue();
            String v = ev.getNewValue();
            if (v == null) return;
            run(() -> {
                if (weight) vm.setWeightFormat(targetsFor(row), v);
                else vm.setActivationFormat(targetsFor(row), v);
            });
        });
        return c;
    }

    private TableColumn<LayerRow, String> granularityColumn(String title, boolean weight) {
        TableColumn<LayerRow, String> c = new TableColumn<>(title);
        c.setPrefWidth(75);
        Predicate<LayerRow> applicable = weight ? LayerRow::weightQuantizable : LayerRow::activationQuantizable;
        c.setCellValueFactory(cd -> specBinding(cd.getValue(), r -> applicable.test(r)
                ? (weight ? r.spec().weightGranularity() : r.spec().activationGranularity()) : ""));
        ObservableList<String> choices = FXCollections.observableArrayList(weight ? Formats.WEIGHT_GRANULARITIES : Formats.ACTIVATION_GRANULARITIES);
        c.setCellFactory(col -> editableCell(choices, applicable));
        c.setOnEditCommit(ev -> {
            LayerRow row = ev.getRowValue();
            String v = ev.getNewValue();
            if (v == null) return;
            run(() -> {
                if (weight) vm.setWeightGranularity(targetsFor(row), v);
                else vm.setActivationGranularity(targetsFor(row), v);
            });
        });
        return c;
    }

    /** An editable column over a list of choices (typing allowed) whose commit calls {@code set} on the edit's targets. */
    private TableColumn<LayerRow, String> choiceColumn(String title, String id, double width, List<String> choices, Predicate<LayerRow> applicable,
                                                       Function<LayerRow, String> value, java.util.function.BiConsumer<List<LayerRow>, String> set) {
        TableColumn<LayerRow, String> c = new TableColumn<>(title);
        c.setId(id);
        c.setPrefWidth(width);
        c.setCellValueFactory(cd -> specBinding(cd.getValue(), r -> applicable.test(r) ? value.apply(r) : ""));
        c.setCellFactory(col -> editableCell(FXCollections.observableArrayList(choices), applicable));
        c.setOnEditCommit(ev -> {
            String v = ev.getNewValue();
            if (v == null) return;
            run(() -> set.accept(targetsFor(ev.getRowValue()), v));
        });
        return c;
    }

    /** A combo-box cell (typing allowed) that only edits rows where the setting applies. */
    private static TableCell<LayerRow, String> editableCell(ObservableList<String> choices, Predicate<LayerRow> applicable) {
        ComboBoxTableCell<LayerRow, String> cell = new ComboBoxTableCell<>(new DefaultStringConverter(), choices) {
            @Override public void startEdit() {
                LayerRow r = getTableRow() == null ? null : getTableRow().getItem();
                if (r == null || !applicable.test(r)) return;
                super.startEdit();
            }
        };
        cell.setComboBoxEditable(true);
        return cell;
    }

    private TableColumn<LayerRow, Number> avgBitsColumn() {
        TableColumn<LayerRow, Number> c = new TableColumn<>("Avg bits");
        c.setPrefWidth(65);
        c.setEditable(false);
        c.setCellValueFactory(cd -> cd.getValue().averageBitsProperty());
        c.setCellFactory(col -> new TableCell<>() {
            @Override protected void updateItem(Number v, boolean empty) {
                super.updateItem(v, empty);
                setText(empty || v == null ? "" : Formatting.bits(v.doubleValue()));
                setAlignment(Pos.CENTER_RIGHT);
            }
        });
        return c;
    }

    private TableColumn<LayerRow, Number> sensitivityColumn() {
        TableColumn<LayerRow, Number> c = new TableColumn<>("Sensitivity");
        c.setPrefWidth(95);
        c.setEditable(false);
        c.setCellValueFactory(cd -> cd.getValue().sensitivityProperty());
        c.setCellFactory(col -> new TableCell<>() {
            private final ProgressBar bar = new ProgressBar();
            { bar.setMaxWidth(Double.MAX_VALUE); }
            @Override protected void updateItem(Number v, boolean empty) {
                super.updateItem(v, empty);
                if (empty || v == null) { setGraphic(null); setText(null); return; }
                double s = v.doubleValue();
                if (Double.isNaN(s)) {
                    setGraphic(null);
                    setText("not measured");
                    setStyle("-fx-text-fill: -fx-mid-text-color; -fx-font-size: 0.85em;");
                } else {
                    bar.setProgress(Math.max(0, Math.min(1, s)));
                    setGraphic(bar);
                    setText(null);
                    setStyle("");
                }
            }
        });
        return c;
    }

    private TableColumn<LayerRow, LayerQuantSpec> enabledColumn() {
        TableColumn<LayerRow, LayerQuantSpec> c = new TableColumn<>("On");
        c.setPrefWidth(40);
        c.setEditable(false);
        c.setCellValueFactory(cd -> cd.getValue().specProperty());
        c.setCellFactory(col -> new TableCell<>() {
            private final CheckBox box = new CheckBox();
            {
                box.setOnAction(e -> {
                    LayerRow r = getTableRow() == null ? null : getTableRow().getItem();
                    if (r != null) run(() -> vm.setEnabled(targetsFor(r), box.isSelected()));
                });
                setAlignment(Pos.CENTER);
            }
            @Override protected void updateItem(LayerQuantSpec s, boolean empty) {
                super.updateItem(s, empty);
                LayerRow r = getTableRow() == null ? null : getTableRow().getItem();
                if (empty || s == null || r == null || !(r.weightQuantizable() || r.activationQuantizable())) {
                    setGraphic(null);
                    return;
                }
                box.setSelected(s.enabled());
                setGraphic(box);
            }
        });
        return c;
    }

    // ------------------------------------------------------------------ bars

    private ToolBar filterBar() {
        TextField name = new TextField();
        name.setId("filter-name");
        name.setPromptText("filter: text or glob, e.g. blocks.*.attn.*");
        name.setPrefColumnCount(26);
        name.textProperty().bindBidirectional(vm.nameFilterProperty());
        ComboBox<LayerKind> kind = new ComboBox<>();
        kind.setId("filter-kind");
        kind.getItems().add(null);
        kind.getItems().addAll(LayerKind.values());
        kind.setConverter(new StringConverter<>() {
            @Override public String toString(LayerKind k) { return k == null ? "all kinds" : k.name().toLowerCase(Locale.ROOT); }
            @Override public LayerKind fromString(String s) { return null; }
        });
        kind.valueProperty().bindBidirectional(vm.kindFilterProperty());
        kind.setPromptText("all kinds");
        CheckBox temporal = new CheckBox("temporal only");
        temporal.selectedProperty().bindBidirectional(vm.temporalOnlyProperty());
        Button selectAll = new Button("Select shown");
        selectAll.setOnAction(e -> table.getSelectionModel().selectAll());
        Label shown = new Label();
        shown.textProperty().bind(Bindings.createStringBinding(() -> vm.visibleRows().size() + " of " + vm.rows().size() + " rows",
                vm.visibleRows(), vm.rows()));
        return new ToolBar(new Label("Filter"), name, kind, temporal, new Separator(), selectAll, shown);
    }

    private ToolBar bulkBar() {
        ComboBox<String> wf = combo("bulk-wformat", Formats.formatChoices(), "int4-asym");
        ComboBox<String> wg = combo("bulk-wgran", Formats.WEIGHT_GRANULARITIES, "channel");
        ComboBox<String> af = combo("bulk-aformat", Formats.formatChoices(), "int8-asym");
        Tooltip tip = new Tooltip("Valid names: " + Formats.validNames());
        tip.setWrapText(true);
        tip.setMaxWidth(520);
        wf.setTooltip(tip);
        af.setTooltip(tip);
        Button applyW = new Button("Set W");
        applyW.setId("bulk-apply-w");
        applyW.setOnAction(e -> run(() -> vm.setWeightFormat(selectedRows(), wf.getEditor().getText())));
        Button applyG = new Button("Set W gran.");
        applyG.setOnAction(e -> run(() -> vm.setWeightGranularity(selectedRows(), wg.getEditor().getText())));
        Button applyA = new Button("Set A");
        applyA.setOnAction(e -> run(() -> vm.setActivationFormat(selectedRows(), af.getEditor().getText())));
        ComboBox<String> am = combo("bulk-amode", Formats.ACTIVATION_MODES, "static");
        am.setPrefWidth(110);
        Button applyM = new Button("Set A calib.");
        applyM.setOnAction(e -> run(() -> vm.setActivationMode(selectedRows(), am.getEditor().getText())));
        Button on = new Button("Enable");
        on.setOnAction(e -> run(() -> vm.setEnabled(selectedRows(), true)));
        Button off = new Button("Disable");
        off.setOnAction(e -> run(() -> vm.setEnabled(selectedRows(), false)));
        Button reset = new Button("Reset to FP32");
        reset.setOnAction(e -> run(() -> vm.resetToFloat(selectedRows())));
        var noSelection = Bindings.isEmpty(table.getSelectionModel().getSelectedItems());
        for (Button b : List.of(applyW, applyG, applyA, applyM, on, off, reset)) b.disableProperty().bind(noSelection);
        Button undo = new Button("Undo");
        undo.setId("undo");
        undo.disableProperty().bind(vm.history().canUndoProperty().not());
        undo.setOnAction(e -> { vm.undo(); table.refresh(); });
        undo.tooltipProperty().bind(Bindings.createObjectBinding(() -> new Tooltip(vm.history().undoTextProperty().get()),
                vm.history().undoTextProperty()));
        Button redo = new Button("Redo");
        redo.setId("redo");
        redo.disableProperty().bind(vm.history().canRedoProperty().not());
        redo.setOnAction(e -> { vm.redo(); table.refresh(); });
        redo.tooltipProperty().bind(Bindings.createObjectBinding(() -> new Tooltip(vm.history().redoTextProperty().get()),
                vm.history().redoTextProperty()));
        Region grow = new Region();
        HBox.setHgrow(grow, Priority.ALWAYS);
        return new ToolBar(new Label("Selection"), wf, applyW, wg, applyG, af, applyA, am, applyM, new Separator(), on, off, reset, grow, undo, redo);
    }

    private static ComboBox<String> combo(String id, List<String> items, String value) {
        ComboBox<String> c = new ComboBox<>(FXCollections.observableArrayList(items));
        c.setId(id);
        c.setEditable(true);
        c.setValue(value);
        c.setPrefWidth(130);
        return c;
    }

    private Node totals() {
        Label l = new Label();
        l.setId("layer-totals");
        l.textProperty().bind(Bindings.createStringBinding(() -> {
                    long total = vm.totalParametersProperty().get();
                    return String.format(Locale.ROOT, "%d layers · %,d parameters (%s) · %,d in linear/conv weights · "
                                    + "average weight bits %s · %d layers quantized · size %s (FP32 %s)",
                            vm.rows().size(), total, Formatting.count(total), vm.quantizableWeightElementsProperty().get(),
                            Formatting.bits(vm.averageWeightBits()), vm.quantizedLayersProperty().get(),
                            Formatting.bytes(vm.modelSizeBytesProperty().get()), Formatting.bytes(total * 4.0));
                }, vm.rows(), vm.totalParametersProperty(), vm.quantizableWeightElementsProperty(), vm.averageWeightBitsProperty(),
                vm.quantizedLayersProperty(), vm.modelSizeBytesProperty()));
        HBox box = new HBox(l);
        box.setPadding(new Insets(4, 8, 4, 8));
        return box;
    }
}
