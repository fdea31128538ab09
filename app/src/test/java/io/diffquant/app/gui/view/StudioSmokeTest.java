package io.diffquant.app.gui.view;

import io.diffquant.app.gui.StudioApp;
import io.diffquant.app.gui.StudioOptions;
import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.Exporter;
import io.diffquant.app.gui.vm.SpecDiff;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.app.gui.vm.TinyModels;
import javafx.application.Platform;
import javafx.scene.Node;
import javafx.scene.control.ComboBox;
import javafx.scene.control.DialogPane;
import javafx.scene.control.Label;
import javafx.scene.control.Spinner;
import javafx.scene.control.TableCell;
import javafx.scene.control.TableView;
import javafx.scene.image.Image;
import javafx.scene.image.PixelReader;
import javafx.scene.input.KeyCode;
import javafx.stage.Stage;
import javafx.stage.Window;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testfx.api.FxRobot;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Headless smoke test of the real studio (TestFX on Monocle, properties from surefire) on a tiny random 28x28x1 DiT:
 * opens it, applies a preset with one click, changes a layer's weight format by typing into the table cell, runs a
 * 5-step side-by-side generation from the panel (FP32, baseline, current config, heatmap, metrics), exports the config
 * and re-imports it through the diff dialog; a corrupt folder gives an error dialog naming the file while the app keeps
 * its model.
 */
class StudioSmokeTest {
    private static final String LAYER = "blocks.0.attn.qkv";
    @TempDir static Path tmp;
    private static StudioApp app;
    private static Path model;
    private final FxRobot robot = new FxRobot();

    @BeforeAll static void start() throws Exception {
        model = TinyModels.ditFolder(tmp.resolve("tiny-dit"), 3);
        Path root = Path.of(System.getProperty("diffquant.root", "..")).toAbsolutePath().normalize();
        StudioOptions o = new StudioOptions(model, null, 5, 0, root, tmp.resolve("studio.json"), tmp.resolve("calibration-cache"));
        FxToolkit.registerPrimaryStage();
        app = (StudioApp) FxToolkit.setupApplication(() -> new StudioApp(o));
    }

    @AfterAll static void stop() throws Exception {
        if (app != null) FxToolkit.cleanupApplication(app);
        FxToolkit.cleanupStages();
    }

    @Test void presetEditGenerateExportImportAndSurviveACorruptFolder() throws Exception {
        StudioViewModel vm = app.viewModel();
        MainWindow w = app.window();
        waitFor(120, () -> vm.model() != null && !vm.jobs().isBusy() || errorDialog() != null);
        DialogPane loadError = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertEquals(null, loadError == null ? null : loadError.getHeaderText() + ": " + loadError.getContentText(),
                "loading the model showed an error");
        assertEquals(vm.model().model().layers().size(), vm.layers().rows().size());
        assertTrue(vm.titleProperty().get().contains("tiny-dit"), vm.titleProperty().get());
        assertTrue(Files.isRegularFile(tmp.resolve("studio.json")), "the opened folder is remembered");

        // --- one click on a preset: the whole table follows the method (W4A8 rtn), one undoable edit
        robot.interact(w::showLayers);
        robot.clickOn("#preset-rtn");
        WaitForAsyncUtils.waitForFxEvents();
        assertEquals("rtn", vm.layers().method().preset());
        assertEquals(4, vm.layers().method().options().get("w_bits"));
        assertEquals(1, vm.layers().history().undoSize());
        assertTrue(robot.lookup("#method-label").queryAs(Label.class).getText().contains("rtn"));
        assertEquals("int4-asym", vm.layers().row(LAYER).spec().weightFormat());

        // --- the layer table: type a format into the W format cell of one layer
        TableView<LayerRow> table = w.layerView().table();
        LayerRow row = vm.layers().row(LAYER);
        int index = table.getItems().indexOf(row);
        robot.interact(() -> table.scrollTo(index));
        WaitForAsyncUtils.waitForFxEvents();
        TableCell<?, ?> cell = cellOf(table, "col-wformat", index);
        robot.clickOn(cell);
        robot.clickOn(cell);   // a click on the selected cell starts editing
        waitFor(10, () -> cell.getGraphic() instanceof ComboBox);
        ComboBox<?> combo = (ComboBox<?>) cell.getGraphic();
        robot.interact(() -> combo.getEditor().clear());
        robot.clickOn(combo.getEditor()).write("int8-sym").type(KeyCode.ENTER);
        waitFor(10, () -> "int8-sym".equals(row.spec().weightFormat()));
        WaitForAsyncUtils.waitForFxEvents();
        assertEquals("int8-sym", cellOf(table, "col-wformat", index).getText());
        assertEquals(8, row.weightBits());
        Label totals = robot.lookup("#layer-totals").queryAs(Label.class);
        assertTrue(totals.getText().contains(String.format(java.util.Locale.ROOT, "average weight bits %.2f",
                vm.layers().averageWeightBits())), totals.getText());
        assertEquals(2, vm.layers().history().undoSize());
        assertEquals(List.of(LAYER), vm.quant().currentTarget().overrides().stream().map(o -> o.pattern()).toList());

        // --- the generation panel: 5 steps typed into the spinner, 4 images, Generate clicked
        robot.clickOn("Generation");
        Spinner<?> steps = robot.lookup("#gen-steps").queryAs(Spinner.class);
        robot.interact(() -> steps.getEditor().clear());
        robot.clickOn(steps.getEditor()).write("5").type(KeyCode.ENTER);
        assertEquals(5, vm.generation().stepsProperty().get());
        robot.interact(() -> vm.generation().imageCountProperty().set(4));
        robot.clickOn("#generate");
        waitFor(600, () -> !vm.jobs().isBusy());
        WaitForAsyncUtils.waitForFxEvents();
        DialogPane genError = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertEquals(null, genError == null ? null : genError.getHeaderText() + ": " + genError.getContentText());
        GenerationResult fp = vm.generation().fpResultProperty().get(), cur = vm.generation().currentResultProperty().get();
        assertEquals(5, fp.stepsDone());
        assertTrue(cur.complete() && vm.generation().baselineResultProperty().get().complete());
        assertNotNull(vm.quant().currentConfigProperty().get(), "the current config was calibrated on the way");
        assertEquals("✓ calibrated", robot.lookup("#calibration-state").queryAs(Label.class).getText());
        Image shown = w.generationView().fpImageView().getImage();
        assertNotNull(shown, "the FP32 grid is shown");
        assertEquals(2 * 29 + 1, (int) shown.getWidth());   // 4 samples of 28x28 in a 2x2 grid with 1-pixel borders
        assertSamePixels(fp.predX0Grids().get(4), shown);   // following the newest step: x̂_0 of the last step
        assertSamePixels(cur.predX0Grids().get(4), w.generationView().currentImageView().getImage());
        assertNotNull(w.generationView().heatmapImageView().getImage(), "the difference heatmap is shown");
        assertEquals(3, w.generationView().metricsTable().getItems().size(), "FP32, baseline and current rows");
        assertTrue(Double.isFinite(vm.generation().metrics().get(2).psnr()), "current config PSNR vs FP32");
        assertTrue(Double.isFinite(vm.generation().metrics().get(0).fid()), "FID-FMNIST with the shipped classifier");
        assertEquals(4, w.generationView().stepSlider().getMax(), 0.0);

        // --- scrubbing back to step 2 shows that step's x̂_0 in every column
        robot.interact(() -> w.generationView().stepSlider().setValue(1));
        WaitForAsyncUtils.waitForFxEvents();
        assertEquals(1, vm.generation().selectedFrameProperty().get());
        assertSamePixels(fp.predX0Grids().get(1), w.generationView().fpImageView().getImage());
        assertSamePixels(cur.predX0Grids().get(1), w.generationView().currentImageView().getImage());
        assertSamePixels(vm.generation().outcomeProperty().get().currentHeatmap().grid(1, true), w.generationView().heatmapImageView().getImage());
        assertTrue(robot.lookup("#step-label").queryAs(Label.class).getText().startsWith("step 2 of 5"));

        // --- export the config, change the table, re-import the config: the diff dialog shows the change, Apply restores it
        Path out = tmp.resolve("export");
        robot.interact(() -> vm.exportAll(out, new Exporter.Options(true, false, false, true, true)));
        waitFor(120, () -> !vm.jobs().isBusy());
        assertTrue(Files.isRegularFile(out.resolve("config.json")), "config exported");
        assertTrue(Files.readString(out.resolve("report.md")).contains("| FP32 |"), "report with the metrics table");
        assertTrue(Files.readString(out.resolve("plots/predx0-change.svg")).contains("<svg"), "plots as SVG");
        assertTrue(Files.size(out.resolve("plots/predx0-change.png")) > 1000, "and as PNG");
        robot.interact(() -> vm.layers().undo());
        assertEquals("int4-asym", row.spec().weightFormat());
        robot.interact(() -> vm.importConfig(out.resolve("config.json")));
        waitFor(60, () -> diffDialog() != null);
        DialogPane diff = WaitForAsyncUtils.asyncFx(StudioSmokeTest::diffDialog).get();
        assertTrue(diff.getHeaderText().contains("1 layer changes"), diff.getHeaderText());
        TableView<?> diffTable = (TableView<?>) diff.lookup("#diff-table");
        assertEquals(1, diffTable.getItems().size());
        assertEquals(LAYER, ((SpecDiff.Change) diffTable.getItems().getFirst()).layer());
        robot.clickOn("Apply");
        waitFor(10, () -> diffDialog() == null);
        assertEquals("int8-sym", row.spec().weightFormat(), "the imported config is back in the table");
        assertNotNull(vm.quant().currentConfigProperty().get(), "its calibrated parameters came with it");

        // --- a corrupt folder: an error dialog naming the file, the app keeps its model and stays responsive
        Path bad = Files.createDirectories(tmp.resolve("corrupt-model"));
        Files.writeString(bad.resolve("config.json"), "{ \"_class_name\": \"DiT\", \"input_size\": ");
        var before = vm.model();
        robot.interact(() -> vm.openModel(bad));
        waitFor(60, () -> !vm.jobs().isBusy() && errorDialog() != null);
        DialogPane dialog = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertTrue(dialog.getHeaderText().contains(bad.toString()), dialog.getHeaderText());
        assertTrue(dialog.getContentText().contains("config.json"), dialog.getContentText());
        assertSame(before, vm.model());
        robot.clickOn("OK");
        waitFor(10, () -> errorDialog() == null);
        assertTrue(vm.statusProperty().get().startsWith("Could not open"), vm.statusProperty().get());
    }

    private static DialogPane diffDialog() { return dialogWithId("diff-dialog"); }

    private static DialogPane errorDialog() { return dialogWithId("error-dialog"); }

    private static DialogPane dialogWithId(String id) {
        for (Window win : List.copyOf(Window.getWindows())) {
            if (win instanceof Stage s && s.isShowing() && s.getScene() != null && s.getScene().getRoot() instanceof DialogPane d
                    && id.equals(d.getId())) return d;
        }
        return null;
    }

    private TableCell<?, ?> cellOf(TableView<?> table, String columnId, int rowIndex) {
        for (Node n : table.lookupAll(".table-cell")) {
            if (n instanceof TableCell<?, ?> c && c.getTableColumn() != null && columnId.equals(c.getTableColumn().getId())
                    && c.getIndex() == rowIndex && c.isVisible()) return c;
        }
        throw new AssertionError("no visible cell of column " + columnId + " at row " + rowIndex);
    }

    private static void assertSamePixels(BufferedImage expected, Image shown) {
        PixelReader pr = shown.getPixelReader();
        assertEquals(expected.getWidth(), (int) shown.getWidth());
        assertEquals(expected.getHeight(), (int) shown.getHeight());
        for (int y = 0; y < expected.getHeight(); y++) for (int x = 0; x < expected.getWidth(); x++)
            assertEquals(expected.getRGB(x, y) | 0xFF000000, pr.getArgb(x, y), "pixel " + x + "," + y);
    }

    private static void waitFor(int seconds, Callable<Boolean> condition) throws TimeoutException {
        WaitForAsyncUtils.waitFor(seconds, TimeUnit.SECONDS, () -> {
            Boolean[] ok = {false};
            Platform.runLater(() -> {
                try { ok[0] = condition.call(); } catch (Exception e) { ok[0] = false; }
            });
            WaitForAsyncUtils.waitForFxEvents();
            return ok[0];
        });
    }
}
