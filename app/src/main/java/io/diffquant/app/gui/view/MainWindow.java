package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.ErrorReport;
import io.diffquant.app.gui.vm.Exporter;
import io.diffquant.app.gui.vm.QuantViewModel;
import javafx.scene.control.ButtonBar;
import javafx.scene.control.ButtonType;
import javafx.scene.control.CheckBox;
import javafx.scene.control.Dialog;
import javafx.stage.FileChooser;
import java.util.List;
import io.diffquant.app.gui.vm.LayerTableViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import javafx.beans.binding.Bindings;
import javafx.collections.ListChangeListener;
import javafx.concurrent.Task;
import javafx.geometry.Insets;
import javafx.geometry.Pos;
import javafx.scene.Scene;
import javafx.scene.control.Alert;
import javafx.scene.control.Button;
import javafx.scene.control.Label;
import javafx.scene.control.Menu;
import javafx.scene.control.MenuBar;
import javafx.scene.control.MenuItem;
import javafx.scene.control.SeparatorMenuItem;
import javafx.scene.control.Tab;
import javafx.scene.control.TabPane;
import javafx.scene.control.TextArea;
import javafx.scene.input.KeyCode;
import javafx.scene.input.KeyCodeCombination;
import javafx.scene.input.KeyCombination;
import javafx.scene.layout.BorderPane;
import javafx.scene.layout.Priority;
import javafx.scene.layout.StackPane;
import javafx.scene.layout.VBox;
import javafx.stage.DirectoryChooser;
import javafx.stage.Stage;
import org.controlsfx.control.StatusBar;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The main window: File/Edit/Help menus, the panel tabs (layers, generation) or an "Open model" prompt while no
 * model is loaded, and a ControlsFX status bar with the current job's progress and a cancel button.
 */
public final class MainWindow {
    private final StudioViewModel vm;
    private final Stage stage;
    private final BorderPane root = new BorderPane();
    private final TabPane tabs = new TabPane();
    private final LayerTableView layerView;
    private final GenerationView generationView;
    private final MethodBar methodBar;
    private final DistributionsView distributionsView;
    private final TemporalView temporalView;
    private final SensitivityView sensitivityView;
    private final Tab distributionsTab, temporalTab, sensitivityTab;
    private final StatusBar statusBar = new StatusBar();
    private final Button cancelButton = new Button("Cancel");
    private final Menu recentMenu = new Menu("Recent");
    private final Tab layersTab;
    private final Tab generationTab;

    public MainWindow(StudioViewModel vm, Stage stage) {
        this.vm = vm;
        this.stage = stage;
        vm.setErrorSink(this::showError);
        vm.setImportHandler(this::showImport);
        layerView = new LayerTableView(vm.layers(), vm::reportError);
        methodBar = new MethodBar(vm);
        methodBar.setBudgetAction(() -> BudgetDialog.show(stage, vm));
        distributionsView = new DistributionsView(vm);
        temporalView = new TemporalView(vm);
        sensitivityView = new SensitivityView(vm);
        generationView = new GenerationView(vm.generation(), vm);
        layersTab = new Tab("Layers", layerView.node());
        generationTab = new Tab("Generation", generationView.node());
        distributionsTab = new Tab("Distributions", distributionsView.node());
        temporalTab = new Tab("Temporal", temporalView.node());
        sensitivityTab = new Tab("Sensitivity", sensitivityView.node());
        layersTab.setId("tab-layers");
        generationTab.setId("tab-generation");
        distributionsTab.setId("tab-distributions");
        temporalTab.setId("tab-temporal");
        sensitivityTab.setId("tab-sensitivity");
        tabs.getTabs().addAll(layersTab, generationTab, distributionsTab, temporalTab, sensitivityTab);
        // the distributions panel follows the table's selection; the sensitivity panel selects layers in the table
        layerView.table().getSelectionModel().selectedItemProperty().addListener((o, a, row) -> {
            if (row != null && (row.weightQuantizable() || row.activationQuantizable())) vm.distributions().layerProperty().set(row.name());
        });
        vm.sensitivity().setLayerSelector(this::selectLayer);
        // hidden panels do not redraw their plots; they catch up when shown (after the tab pane's layout)
        tabs.getSelectionModel().selectedItemProperty().addListener((o, a, t) -> javafx.application.Platform.runLater(() -> {
            if (t == distributionsTab) distributionsView.refreshIfDirty();
            else if (t == temporalTab) temporalView.refreshIfDirty();
            else if (t == sensitivityTab) sensitivityView.refreshIfDirty();
        }));
        tabs.getTabs().forEach(t -> t.setClosable(false));

        VBox top = new VBox(menuBar(), methodBar.node());
        root.setTop(top);
        root.setCenter(center());
        root.setBottom(buildStatusBar());
        Scene scene = new Scene(root, 1280, 820);
        stage.setScene(scene);
        stage.titleProperty().bind(vm.titleProperty());
    }

    public BorderPane root() { return root; }
    public TabPane tabs() { return tabs; }
    public LayerTableView layerView() { return layerView; }
    public GenerationView generationView() { return generationView; }
    public StatusBar statusBar() { return statusBar; }
    public MethodBar methodBar() { return methodBar; }
    public Stage stage() { return stage; }

    public void selectTab(int index) {
        if (index >= 0 && index < tabs.getTabs().size()) tabs.getSelectionModel().select(index);
    }
    public int selectedTab() { return tabs.getSelectionModel().getSelectedIndex(); }
    public void showLayers() { tabs.getSelectionModel().select(layersTab); }
    public void showGeneration() { tabs.getSelectionModel().select(generationTab); }
    public void showDistributions() { tabs.getSelectionModel().select(distributionsTab); }
    public void showTemporal() { tabs.getSelectionModel().select(temporalTab); }
    public void showSensitivity() { tabs.getSelectionModel().select(sensitivityTab); }
    public TemporalView temporalView() { return temporalView; }
    public SensitivityView sensitivityView() { return sensitivityView; }
    public DistributionsView distributionsView() { return distributionsView; }

    /** Shows the layer table with one layer selected and scrolled to (clearing filters that hide it). */
    public void selectLayer(String name) {
        var lt = vm.layers();
        var row = lt.row(name);
        if (!lt.visibleRows().contains(row)) {
            lt.nameFilterProperty().set("");
            lt.kindFilterProperty().set(null);
            lt.temporalOnlyProperty().set(false);
        }
        showLayers();
        var table = layerView.table();
        int i = table.getItems().indexOf(row);
        if (i < 0) return;
        table.getSelectionModel().clearAndSelect(i);
        table.scrollTo(Math.max(0, i - 3));
        vm.statusProperty().set("Selected " + name);
    }

    // ------------------------------------------------------------------ parts

    private MenuBar menuBar() {
        MenuItem open = new MenuItem("Open model folder...");
        open.setId("menu-open");
        open.setAccelerator(new KeyCodeCombination(KeyCode.O, KeyCombination.SHORTCUT_DOWN));
        open.setOnAction(e -> chooseModelFolder());
        open.disableProperty().bind(vm.jobs().busyProperty());
        recentMenu.disableProperty().bind(Bindings.isEmpty(vm.recentModels()).or(vm.jobs().busyProperty()));
        vm.recentModels().addListener((ListChangeListener<Path>) c -> rebuildRecent());
        rebuildRecent();
        MenuItem export = new MenuItem("Export everything...");
        export.setId("menu-export");
        export.setAccelerator(new KeyCodeCombination(KeyCode.E, KeyCombination.SHORTCUT_DOWN));
        export.setOnAction(e -> chooseExport());
        export.disableProperty().bind(vm.jobs().busyProperty().or(vm.modelProperty().isNull()));
        MenuItem importConfig = new MenuItem("Import config...");
        importConfig.setId("menu-import");
        importConfig.setAccelerator(new KeyCodeCombination(KeyCode.I, KeyCombination.SHORTCUT_DOWN));
        importConfig.setOnAction(e -> chooseImport());
        importConfig.disableProperty().bind(vm.jobs().busyProperty().or(vm.modelProperty().isNull()));
        MenuItem quit = new MenuItem("Quit");
        quit.setAccelerator(new KeyCodeCombination(KeyCode.Q, KeyCombination.SHORTCUT_DOWN));
        quit.setOnAction(e -> stage.close());
        Menu file = new Menu("File", null, open, recentMenu, new SeparatorMenuItem(), importConfig, export, new SeparatorMenuItem(), quit);

        LayerTableViewModel lt = vm.layers();
        MenuItem undo = new MenuItem("Undo");
        undo.textProperty().bind(Bindings.when(lt.history().canUndoProperty()).then(lt.history().undoTextProperty()).otherwise("Undo"));
        undo.disableProperty().bind(lt.history().canUndoProperty().not());
        undo.setAccelerator(new KeyCodeCombination(KeyCode.Z, KeyCombination.SHORTCUT_DOWN));
        undo.setOnAction(e -> lt.undo());
        MenuItem redo = new MenuItem("Redo");
        redo.textProperty().bind(Bindings.when(lt.history().canRedoProperty()).then(lt.history().redoTextProperty()).otherwise("Redo"));
        redo.disableProperty().bind(lt.history().canRedoProperty().not());
        redo.setAccelerator(new KeyCodeCombination(KeyCode.Z, KeyCombination.SHORTCUT_DOWN, KeyCombination.SHIFT_DOWN));
        redo.setOnAction(e -> lt.redo());
        Menu edit = new Menu("Edit", null, undo, redo);

        MenuItem about = new MenuItem("About DiffQuant Studio");
        about.setOnAction(e -> showAbout());
        Menu help = new Menu("Help", null, about);
        MenuBar bar = new MenuBar(file, edit, help);
        bar.setId("menu-bar");
        return bar;
    }

    private void rebuildRecent() {
        recentMenu.getItems().clear();
        for (Path p : vm.recentModels()) {
            MenuItem item = new MenuItem(p.toString());
            item.setMnemonicParsing(false);
            item.setOnAction(e -> vm.openModel(p));
            recentMenu.getItems().add(item);
        }
    }

    private StackPane center() {
        Label title = new Label("No model loaded");
        title.setStyle("-fx-font-size: 20px; -fx-font-weight: bold;");
        Label hint = new Label("Open a DiT folder (config.json + model.safetensors) or a diffusers UNet2DModel folder.");
        Label shipped = new Label(StudioViewModel.startupMessage(vm.root()));
        shipped.setId("startup-message");
        shipped.setWrapText(true);
        shipped.setMaxWidth(640);
        shipped.setStyle("-fx-text-fill: #b45309;");
        Button open = new Button("Open model folder...");
        open.setId("empty-open");
        open.setDefaultButton(true);
        open.setOnAction(e -> chooseModelFolder());
        open.disableProperty().bind(vm.jobs().busyProperty());
        VBox empty = new VBox(12, title, hint, shipped, open);
        empty.setAlignment(Pos.CENTER);
        empty.setId("empty-state");
        empty.visibleProperty().bind(vm.modelProperty().isNull());
        tabs.visibleProperty().bind(vm.modelProperty().isNotNull());
        return new StackPane(tabs, empty);
    }

    private StatusBar buildStatusBar() {
        statusBar.setId("status-bar");
        statusBar.textProperty().bind(vm.statusProperty());
        Label summary = new Label();
        summary.setId("model-summary");
        LayerTableViewModel lt = vm.layers();
        summary.textProperty().bind(Bindings.createStringBinding(() -> vm.model() == null ? "" : String.format(Locale.ROOT,
                        "%,d params · avg W bits %.2f · %s", lt.totalParametersProperty().get(), lt.averageWeightBits(),
                        Formatting.bytes(lt.modelSizeBytesProperty().get())),
                vm.modelProperty(), lt.totalParametersProperty(), lt.averageWeightBitsProperty(), lt.modelSizeBytesProperty()));
        cancelButton.setId("cancel-job");
        cancelButton.disableProperty().bind(vm.jobs().busyProperty().not());
        cancelButton.setOnAction(e -> vm.cancelJob());
        statusBar.getRightItems().addAll(summary, cancelButton);
        vm.jobs().currentProperty().addListener((o, old, task) -> bindProgress(task));
        bindProgress(vm.jobs().current());
        return statusBar;
    }

    private void bindProgress(Task<?> task) {
        statusBar.progressProperty().unbind();
        if (task == null) statusBar.setProgress(0);
        else statusBar.progressProperty().bind(task.progressProperty());
    }

    // ------------------------------------------------------------------ actions

    private void chooseModelFolder() {
        DirectoryChooser dc = new DirectoryChooser();
        dc.setTitle("Open model folder");
        Path start = vm.model() != null ? vm.model().folder().toAbsolutePath().getParent()
                : vm.recentModels().isEmpty() ? null : vm.recentModels().getFirst().getParent();
        if (start != null && Files.isDirectory(start)) dc.setInitialDirectory(start.toFile());
        File f = dc.showDialog(stage);
        if (f != null) vm.openModel(f.toPath());
    }

    private void chooseExport() {
        Dialog<Exporter.Options> d = new Dialog<>();
        d.initOwner(stage);
        d.setTitle("Export everything");
        d.setHeaderText("Export the current configuration (calibrated first if needed), its quantized checkpoint,\n"
                + "the generated images, every plot (PNG and SVG) and a report (Markdown and HTML) into a folder.");
        CheckBox config = new CheckBox("config JSON"), ckpt = new CheckBox("quantized checkpoint"), images = new CheckBox("images (PNG)"),
                plots = new CheckBox("plots (PNG and SVG)"), report = new CheckBox("report (report.md, report.html)");
        for (CheckBox c : List.of(config, ckpt, images, plots, report)) c.setSelected(true);
        d.getDialogPane().setContent(new VBox(6, config, ckpt, images, plots, report));
        ButtonType choose = new ButtonType("Choose folder...", ButtonBar.ButtonData.OK_DONE);
        d.getDialogPane().getButtonTypes().addAll(choose, ButtonType.CANCEL);
        d.setResultConverter(bt -> bt == choose ? new Exporter.Options(config.isSelected(), ckpt.isSelected(), images.isSelected(),
                plots.isSelected(), report.isSelected()) : null);
        d.showAndWait().ifPresent(o -> {
            DirectoryChooser dc = new DirectoryChooser();
            dc.setTitle("Export into folder");
            File f = dc.showDialog(stage);
            if (f != null) vm.exportAll(f.toPath(), o);
        });
    }

    private void chooseImport() {
        FileChooser fc = new FileChooser();
        fc.setTitle("Import quantization config");
        fc.getExtensionFilters().addAll(new FileChooser.ExtensionFilter("Config JSON", "*.json"), new FileChooser.ExtensionFilter("All files", "*"));
        File f = fc.showOpenDialog(stage);
        if (f != null) vm.importConfig(f.toPath());
    }

    /** Shows what an imported config changes and applies it when the user agrees. */
    public Dialog<ButtonType> showImport(QuantViewModel.ImportResult r) {
        String warning = r.identityMismatch() == null ? null : "This config was made for another model: " + r.identityMismatch()
                + ". Its layer specs apply; its calibrated parameters are not used (the configuration will be recalibrated).";
        Dialog<ButtonType> d = DiffDialog.create(stage, "Import " + r.file().getFileName(), "Importing " + r.file(), r.diff(), warning);
        d.setOnHidden(e -> { if (d.getResult() == DiffDialog.APPLY) vm.applyImport(r); });
        d.show();
        return d;
    }

    private void showAbout() {
        Alert a = new Alert(Alert.AlertType.INFORMATION);
        a.initOwner(stage);
        a.setTitle("About DiffQuant Studio");
        a.setHeaderText("DiffQuant Studio 0.1.0");
        a.setContentText("A laboratory for post-training quantization of diffusion models (DiT, UNet).\n\n"
                + "Java " + System.getProperty("java.version") + " · JavaFX " + System.getProperty("javafx.runtime.version"));
        a.show();
    }

    /** Shows an error dialog naming the file or field concerned; the cause's chain is under "details". */
    public void showError(ErrorReport r) {
        Alert a = new Alert(Alert.AlertType.ERROR);
        a.initOwner(stage);
        a.setTitle(r.title());
        a.setHeaderText(r.subject().isEmpty() ? r.title() : r.title() + ":\n" + r.subject());
        a.setContentText(r.message());
        a.getDialogPane().setId("error-dialog");
        if (r.cause() != null) {
            TextArea details = new TextArea(ErrorReport.describe(r.cause()) + "\n\n(" + r.cause().getClass().getName() + ")");
            details.setEditable(false);
            details.setWrapText(true);
            VBox.setVgrow(details, Priority.ALWAYS);
            VBox box = new VBox(details);
            box.setPadding(new Insets(4));
            a.getDialogPane().setExpandableContent(box);
        }
        a.getDialogPane().setMinWidth(520);
        a.show();
    }
}
