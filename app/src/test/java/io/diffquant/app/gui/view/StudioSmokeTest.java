package io.diffquant.app.gui.view;

import io.diffquant.app.gui.StudioApp;
import io.diffquant.app.gui.StudioOptions;
import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.GenerationViewModel;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.Exporter;
import io.diffquant.app.gui.vm.SpecDiff;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.app.gui.vm.TemporalViewModel;
import org.jfree.chart.entity.CategoryItemEntity;
import org.jfree.chart.fx.ChartViewer;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.xy.XYSeriesCollection;
import io.diffquant.app.gui.vm.TinyModels;
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
import org.testfx.util.WaitForAsyncUtils;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Headless smoke test of the real studio (TestFX on Monocle, properties from surefire) on a tiny random 28x28x1 DiT:
 * opens it, applies a preset with one click, changes a layer's weight format by typing into the table cell, runs a
 * 5-step side-by-side generation from the panel (FP32, baseline, current config, heatmap, metrics), exports the config
 * everything (config JSON, quantized checkpoint, images, plots as PNG and SVG, Markdown and HTML report) and re-imports
 * the config through the diff dialog (it shows the one layer it changes; the re-imported config equals the exported one),
 * calibrates two TFMQ methods on the temporal panel and toggles TIAR and FSC (the error chart's current-config series
 * follows within a second and changes with FSC), runs the per-layer sensitivity and clicks a bar (the table selects that
 * layer), cancels a long sampling job from the status bar, and a corrupt folder
 * gives an error dialog naming the file while the app keeps its model.
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
        app = StudioFx.start(o);
    }

    @AfterAll static void stop() throws Exception { StudioFx.stop(app); }

    @Test void presetEditGenerateExportImportToggleTemporalAndSurviveACorruptFolder() throws Exception {
        StudioViewModel vm = app.viewModel();
        MainWindow w = app.window();
        waitFor(120, () -> vm.model() != null && !vm.jobs().isBusy() || errorDialog() != null);
        DialogPane loadError = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertEquals(null, loadError == null ? null : loadError.getHeaderText() + ": " + loadError.getContentText(),
                "loading the model showed an error");
        assertEquals(vm.model().model().layers().size(), vm.layers().rows().size());
        assertTrue(vm.titleProperty().get().contains("tiny-dit"), vm.titleProperty().get());
        assertTrue(Files.isRegularFile(tmp.resolve("studio.json")), "the opened folder is remembered");
        Spinner<?> calibImages = robot.lookup("#calibration-images").queryAs(Spinner.class);
        assertEquals(0, vm.quant().calibrationImagesProperty().get());
        assertEquals("default", calibImages.getEditor().getText(), "0 calibration images reads as the method's default");

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

        // --- export everything in one action: config, quantized checkpoint, images, plots (PNG + SVG), report (MD + HTML)
        Path out = tmp.resolve("export");
        QuantConfig exported = vm.quant().currentConfigProperty().get();
        robot.interact(() -> vm.exportAll(out, Exporter.Options.ALL));
        waitFor(120, () -> !vm.jobs().isBusy());
        assertNoErrorDialog();
        String configJson = Files.readString(out.resolve("config.json"));
        assertEquals(QuantConfigCodec.toJson(exported).strip(), configJson.strip(), "the config exported is the current calibrated config");
        Path ckpt = out.resolve("quantized.safetensors");
        assertEquals(configJson.strip(), QuantConfigCodec.toJson(QuantizedCheckpoint.readConfig(ckpt)).strip(), "the checkpoint carries the config");
        assertTrue(Files.size(ckpt) < Files.size(model.resolve("model.safetensors")), "W4 (one layer W8) weights: smaller than FP32");
        assertSamePixels(fp.finalGrid(), ImageIO.read(out.resolve("images/fp32.png").toFile()));
        assertSamePixels(cur.finalGrid(), ImageIO.read(out.resolve("images/current.png").toFile()));
        assertTrue(Files.isRegularFile(out.resolve("images/baseline.png")) && Files.isRegularFile(out.resolve("images/difference-current.png")));
        List<String> pngs, svgs;
        try (var files = Files.list(out.resolve("plots"))) {
            List<String> names = files.map(f -> f.getFileName().toString()).sorted().toList();
            pngs = names.stream().filter(n -> n.endsWith(".png")).map(n -> n.replace(".png", "")).toList();
            svgs = names.stream().filter(n -> n.endsWith(".svg")).map(n -> n.replace(".svg", "")).toList();
        }
        assertTrue(pngs.contains("predx0-change"), pngs.toString());
        assertEquals(pngs, svgs, "every plot as PNG and as SVG");
        for (String stem : svgs) assertTrue(Files.readString(out.resolve("plots/" + stem + ".svg")).contains("<svg"), stem + ".svg");
        String md = Files.readString(out.resolve("report.md")), html = Files.readString(out.resolve("report.html"));
        assertTrue(md.contains("| FP32 |") && md.contains("`" + LAYER + "`") && md.contains("plots/predx0-change.svg"), "markdown report: metrics, overrides, plots");
        assertTrue(html.contains("<details><summary>config.json</summary>") && html.contains("images/current.png"), "HTML report embeds the config");

        // --- change the table, re-import the config: the diff dialog shows what it changes, Apply restores the exported config
        robot.interact(() -> vm.layers().undo());
        assertEquals("int4-asym", row.spec().weightFormat());
        robot.interact(() -> vm.importConfig(out.resolve("config.json")));
        waitFor(60, () -> diffDialog() != null);
        DialogPane diff = WaitForAsyncUtils.asyncFx(StudioSmokeTest::diffDialog).get();
        assertTrue(diff.getHeaderText().contains("1 layer changes"), diff.getHeaderText());
        TableView<?> diffTable = (TableView<?>) diff.lookup("#diff-table");
        assertEquals(1, diffTable.getItems().size());
        SpecDiff.Change change = (SpecDiff.Change) diffTable.getItems().getFirst();
        assertEquals(LAYER, change.layer());
        assertTrue(change.weightChanged() && !change.inputChanged(), change.toString());
        assertEquals("int4-asym", change.before().weightFormat());
        assertEquals("int8-sym", change.after().weightFormat());
        robot.clickOn("Apply");
        waitFor(10, () -> diffDialog() == null);
        assertEquals("int8-sym", row.spec().weightFormat(), "the imported config is back in the table");
        assertEquals(2, vm.layers().history().undoSize(), "the import is one undoable edit (after the preset and the undone edit)");
        QuantConfig imported = vm.quant().currentConfigProperty().get();
        assertNotNull(imported, "its calibrated parameters came with it");
        assertEquals(configJson.strip(), QuantConfigCodec.toJson(imported).strip(), "the re-imported config equals the exported one");

        // --- the temporal panel: calibrate and evaluate two TFMQ methods, then toggle TIAR and FSC and watch the error chart
        TemporalViewModel tv = vm.temporal();
        robot.interact(() -> {
            vm.quant().setExtraOptions("tfmq", java.util.Map.of("tiar_iters", 5, "tiar_batch", 8));
            vm.quant().calibrationImagesProperty().set(4);
            vm.analysis().setSettings(vm.analysis().settings().withSamples(2));
            for (TemporalViewModel.Method m : TemporalViewModel.Method.values())
                tv.shownProperty(m).set(m == TemporalViewModel.Method.NONE || m == TemporalViewModel.Method.FSC);
            w.showTemporal();
        });
        robot.clickOn("#temporal-run");
        waitFor(600, () -> !vm.jobs().isBusy());
        WaitForAsyncUtils.waitForFxEvents();
        assertNoErrorDialog();
        XYPlot errorPlot = w.temporalView().errorChart().getXYPlot();
        List<String> names = seriesNames(errorPlot);
        assertTrue(names.containsAll(List.of("no maintenance", "FSC")), names.toString());
        assertTrue(tv.tiarProperty().get() && tv.fscProperty().get(), "switches start at TIAR + FSC");
        robot.clickOn("#temporal-tiar");   // TIAR off: the configuration becomes tfmq with FSC only, an evaluated method
        long clicked = System.nanoTime();
        waitFor(10, () -> seriesNames(errorPlot).stream().anyMatch(n -> n.startsWith("Current config")));
        double latency = (System.nanoTime() - clicked) / 1e9;
        assertEquals("tfmq", vm.layers().method().preset());
        assertEquals(false, vm.layers().method().options().get("tiar"));
        assertArrayEquals(ys(errorPlot, "FSC"), ys(errorPlot, currentName(errorPlot)), 0.0, "the current config is the FSC method");
        assertTrue(latency < 1.0, "the toggle re-plotted in " + latency + " s");
        robot.clickOn("#temporal-fsc");    // FSC off: the current series becomes the no-maintenance one
        waitFor(10, () -> java.util.Arrays.equals(ys(errorPlot, "no maintenance"), ys(errorPlot, currentName(errorPlot))));
        assertFalse(java.util.Arrays.equals(ys(errorPlot, "FSC"), ys(errorPlot, currentName(errorPlot))), "the series changed with FSC");
        assertNotNull(w.temporalView().mismatchViewer().getChart());

        // --- the sensitivity panel: per-layer sensitivity, then a click on one of its bars selects that layer in the table
        robot.interact(() -> {
            w.showSensitivity();
            assertNotNull(vm.runLayerSensitivity(), "layer sensitivity started");
        });
        waitFor(300, () -> !vm.jobs().isBusy());
        assertNoErrorDialog();
        ChartViewer bars = w.sensitivityView().barsViewer();
        Object[] bar = {null, null};   // the layer of a bar other than the selected one, and the screen point of its centre
        waitFor(20, () -> {
            var info = bars.getCanvas().getRenderingInfo();
            if (info == null || info.getEntityCollection() == null) return false;
            for (Object o : info.getEntityCollection().getEntities()) {
                if (o instanceof CategoryItemEntity c && !LAYER.equals(String.valueOf(c.getColumnKey()))) {
                    var b = c.getArea().getBounds2D();
                    bar[0] = String.valueOf(c.getColumnKey());
                    bar[1] = bars.getCanvas().localToScreen(b.getCenterX(), b.getCenterY());
                }
            }
            return bar[0] != null;
        });
        String clickedLayer = (String) bar[0];
        assertFalse(Double.isNaN(vm.layers().row(clickedLayer).sensitivityProperty().get()), "the table's sensitivity column is filled: " + clickedLayer);
        robot.clickOn((javafx.geometry.Point2D) bar[1]);
        waitFor(20, () -> w.tabs().getSelectionModel().getSelectedItem().getId().equals("tab-layers")
                && table.getSelectionModel().getSelectedItem() != null
                && clickedLayer.equals(table.getSelectionModel().getSelectedItem().name()));

        // --- a long job is cancelled from the status bar: sampling stops between steps, the frames so far stay
        robot.interact(() -> {
            w.showGeneration();
            vm.generation().stepsProperty().set(GenerationViewModel.MAX_STEPS);
            vm.generation().imageCountProperty().set(16);
        });
        robot.clickOn("#generate-fp");
        waitFor(120, () -> vm.generation().fpResultProperty().get() != null && vm.generation().fpResultProperty().get().stepsDone() >= 2);
        assertTrue(robot.lookup("#cancel-job").queryAs(javafx.scene.control.Button.class).isVisible(), "the status bar offers Cancel");
        robot.clickOn("#cancel-job");
        waitFor(60, () -> !vm.jobs().isBusy());
        GenerationResult partial = vm.generation().fpResultProperty().get();
        assertTrue(partial.stepsDone() < GenerationViewModel.MAX_STEPS, partial.stepsDone() + " steps");
        assertTrue(vm.statusProperty().get().startsWith("Sampling cancelled after "), vm.statusProperty().get());
        assertNoErrorDialog();

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

    private static void assertNoErrorDialog() throws Exception {
        DialogPane d = WaitForAsyncUtils.asyncFx(StudioSmokeTest::errorDialog).get();
        assertEquals(null, d == null ? null : d.getHeaderText() + ": " + d.getContentText());
    }

    private static List<String> seriesNames(XYPlot p) {
        List<String> n = new java.util.ArrayList<>();
        var ds = (XYSeriesCollection) p.getDataset();
        for (int i = 0; ds != null && i < ds.getSeriesCount(); i++) n.add(String.valueOf(ds.getSeriesKey(i)));
        return n;
    }

    private static String currentName(XYPlot p) {
        return seriesNames(p).stream().filter(n -> n.startsWith("Current config")).findFirst().orElse("?");
    }

    private static double[] ys(XYPlot p, String name) {
        var ds = (XYSeriesCollection) p.getDataset();
        int i = ds.getSeriesIndex(name);
        if (i < 0) return new double[0];
        double[] y = new double[ds.getItemCount(i)];
        for (int k = 0; k < y.length; k++) y[k] = ds.getYValue(i, k);
        return y;
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

    private static void assertSamePixels(BufferedImage expected, BufferedImage written) {
        assertEquals(expected.getWidth(), written.getWidth());
        assertEquals(expected.getHeight(), written.getHeight());
        for (int y = 0; y < expected.getHeight(); y++) for (int x = 0; x < expected.getWidth(); x++)
            assertEquals(expected.getRGB(x, y) | 0xFF000000, written.getRGB(x, y) | 0xFF000000, "pixel " + x + "," + y);
    }

    private static void waitFor(int seconds, Callable<Boolean> condition) throws TimeoutException { StudioFx.waitFor(seconds, condition); }
}
