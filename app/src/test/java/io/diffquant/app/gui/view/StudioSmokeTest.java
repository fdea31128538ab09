package io.diffquant.app.gui.view;

import io.diffquant.app.gui.StudioApp;
import io.diffquant.app.gui.StudioOptions;
import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.StudioViewModel;
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
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Headless smoke test of the real studio (TestFX on Monocle, properties from surefire): opens the golden DiT-small
 * folder, changes a layer's weight format by typing into the table cell, runs a 5-step generation from the panel
 * and checks the image shown and the step scrubber; a corrupt folder gives an error dialog naming the file while
 * the app keeps its model.
 */
class StudioSmokeTest {
    private static final String LAYER = "blocks.0.attn.qkv";
    @TempDir static Path tmp;
    private static StudioApp app;
    private static Path ditSmall;
    private final FxRobot robot = new FxRobot();

    @BeforeAll static void start() throws Exception {
        String root = System.getProperty("diffquant.root", "..");
        ditSmall = Path.of(root, "engine/src/test/resources/golden/dit-small").toAbsolutePath().normalize();
        assumeTrue(Files.isRegularFile(ditSmall.resolve("model.safetensors")),
                "golden DiT-small folder missing at " + ditSmall + " (made by tools/golden/make_golden.py)");
        StudioOptions o = new StudioOptions(ditSmall, null, 5, 0, null, tmp.resolve("studio.json"));
        FxToolkit.registerPrimaryStage();
        app = (StudioApp) FxToolkit.setupApplication(() -> new StudioApp(o));
    }

    @AfterAll static void stop() throws Exception {
        if (app != null) FxToolkit.cleanupApplication(app);
        FxToolkit.cleanupStages();
    }

    @Test void loadEditGenerateAndSurviveACorruptFolder() throws Exception {
        StudioViewModel vm = app.viewModel();
        MainWindow w = app.window();
        waitFor(60, () -> vm.model() != null && !vm.jobs().isBusy() || errorDialog() != null);
        DialogPane loadError = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertEquals(null, loadError == null ? null : loadError.getHeaderText() + ": " + loadError.getContentText(),
                "loading the golden model showed an error");
        assertEquals(vm.model().model().layers().size(), vm.layers().rows().size());
        assertTrue(vm.titleProperty().get().contains("dit-small"), vm.titleProperty().get());
        assertTrue(Files.isRegularFile(tmp.resolve("studio.json")), "the opened folder is remembered");

        // --- the layer table: type a format into the W format cell of one layer
        robot.interact(w::showLayers);
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
        robot.clickOn(combo.getEditor()).write("int4-sym").type(KeyCode.ENTER);
        waitFor(10, () -> "int4-sym".equals(row.spec().weightFormat()));
        WaitForAsyncUtils.waitForFxEvents();
        assertEquals("int4-sym", cellOf(table, "col-wformat", index).getText());
        assertEquals(4, row.weightBits());
        assertTrue(vm.layers().averageWeightBits() < 32, "average bits follow the edit");
        Label totals = robot.lookup("#layer-totals").queryAs(Label.class);
        assertTrue(totals.getText().contains(String.format(java.util.Locale.ROOT, "average weight bits %.2f",
                vm.layers().averageWeightBits())), totals.getText());
        assertEquals(1, vm.layers().history().undoSize());

        // --- the generation panel: 5 steps typed into the spinner, Generate clicked
        robot.clickOn("Generation");
        Spinner<?> steps = robot.lookup("#gen-steps").queryAs(Spinner.class);
        robot.interact(() -> steps.getEditor().clear());
        robot.clickOn(steps.getEditor()).write("5").type(KeyCode.ENTER);
        assertEquals(5, vm.generation().stepsProperty().get());
        robot.clickOn("#generate");
        waitFor(120, () -> !vm.jobs().isBusy() && vm.generation().fpResultProperty().get() != null
                && vm.generation().fpResultProperty().get().complete());
        WaitForAsyncUtils.waitForFxEvents();
        GenerationResult r = vm.generation().fpResultProperty().get();
        assertEquals(5, r.stepsDone());
        Image shown = w.generationView().fpImageView().getImage();
        assertNotNull(shown, "the FP32 grid is shown");
        assertEquals(8, vm.generation().imageCountProperty().get());
        assertEquals(3 * 9 + 1, (int) shown.getWidth());   // 8 samples of 8x8 in a 3x3 grid with 1-pixel borders
        assertEquals(3 * 9 + 1, (int) shown.getHeight());
        assertSamePixels(r.predX0Grids().get(4), shown);   // following the newest step: x̂_0 of the last step
        assertEquals(4, w.generationView().stepSlider().getMax(), 0.0);

        // --- scrubbing back to step 2 shows that step's x̂_0
        robot.interact(() -> w.generationView().stepSlider().setValue(1));
        WaitForAsyncUtils.waitForFxEvents();
        assertEquals(1, vm.generation().selectedFrameProperty().get());
        assertSamePixels(r.predX0Grids().get(1), w.generationView().fpImageView().getImage());
        assertTrue(robot.lookup("#step-label").queryAs(Label.class).getText().startsWith("step 2 of 5"));

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

    private static DialogPane errorDialog() {
        for (Window win : List.copyOf(Window.getWindows())) {
            if (win instanceof Stage s && s.isShowing() && s.getScene() != null && s.getScene().getRoot() instanceof DialogPane d
                    && "error-dialog".equals(d.getId())) return d;
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
