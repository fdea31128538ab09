package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.BudgetViewModel;
import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.app.gui.vm.TemporalViewModel;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.model.LayerKind;
import javafx.animation.PauseTransition;
import javafx.concurrent.Task;
import javafx.embed.swing.SwingFXUtils;
import javafx.scene.Node;
import javafx.scene.control.ButtonType;
import javafx.scene.control.Dialog;
import javafx.scene.image.WritableImage;
import javafx.util.Duration;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The studio's {@code --screenshot DIR} mode: drives the real app through every panel with real engine work and renders
 * the window with {@link javafx.scene.Node#snapshot} to PNG (written atomically). The layer panel after a preset click
 * and two edits; the generation panel after a side-by-side run (FP32, baseline, current config, heatmap, metrics) and
 * scrubbed back to an early step; the distributions of one layer; the temporal panel after calibrating and evaluating
 * TFMQ's methods (TIAR shortened to 200 steps so that the run stays short); the sensitivity panel after a perturbation
 * sweep and the per-layer sensitivity; the bit-budget result as its diff dialog. Runs on the FX thread with timers;
 * engine work stays on the worker.
 */
public final class ScreenshotRun {
    /** Files written, in order. */
    public static final List<String> FILES = List.of("studio-layers.png", "studio-generation.png", "studio-generation-scrub.png",
            "studio-distributions.png", "studio-temporal.png", "studio-sensitivity.png", "studio-budget-diff.png");
    private static final long TIMEOUT_MS = 3_600_000;

    private final StudioViewModel vm;
    private final MainWindow window;
    private final Path dir;
    private final int steps;
    private final long lingerMillis;
    private final Consumer<String> done;
    private final long deadline;
    private final Deque<Runnable> todo = new ArrayDeque<>();
    private boolean finished;

    /** @param done called once with null on success or a message naming what failed */
    public ScreenshotRun(StudioViewModel vm, MainWindow window, Path dir, int steps, long lingerMillis, Consumer<String> done) {
        this.vm = vm;
        this.window = window;
        this.dir = dir;
        this.steps = steps;
        this.lingerMillis = lingerMillis;
        this.done = done;
        this.deadline = System.currentTimeMillis() + TIMEOUT_MS;
    }

    public void start() {
        vm.setErrorSink(r -> finish("screenshot mode: " + r.title() + ": " + r.subject() + ": " + r.message()));
        after(500, () -> waitFor(() -> !vm.jobs().isBusy(), "the model to load", this::plan));
    }

    private void plan() {
        if (vm.model() == null) {
            finish("screenshot mode: no model loaded (give --model DIR, or ship assets/dit-fmnist)");
            return;
        }
        todo.add(this::layers);
        todo.add(this::generation);
        todo.add(this::distributions);
        todo.add(this::temporal);
        todo.add(this::sensitivity);
        todo.add(this::budget);
        todo.add(() -> after(lingerMillis, () -> finish(null)));
        next();
    }

    private void next() {
        if (finished) return;
        Runnable r = todo.poll();
        if (r != null) r.run();
    }

    /** Runs a job, waits for it, then waits for the FX side to settle, then continues with {@code then}. */
    private void job(String what, Supplier<Task<?>> start, Runnable then) {
        Task<?> t = start.get();
        if (t == null) {
            finish("screenshot mode: " + what + " could not start");
            return;
        }
        waitFor(() -> switch (t.getState()) {
            case SUCCEEDED, FAILED, CANCELLED -> !vm.jobs().isBusy();
            default -> false;
        }, what, () -> {
            if (t.getState() != javafx.concurrent.Worker.State.SUCCEEDED) {
                finish("screenshot mode: " + what + " " + t.getState().name().toLowerCase() + ": "
                        + (t.getException() == null ? "" : t.getException().getMessage()));
                return;
            }
            after(400, then);
        });
    }

    private void layers() {
        window.showLayers();
        List<LayerRow> rows = vm.layers().rows();
        try {
            vm.applyPreset(vm.quant().choiceFor("q-diffusion").withOption("reconstruction", "none"));
            List<LayerRow> fc1 = rows.stream().filter(r -> r.name().endsWith("mlp.fc1")).limit(2).toList();
            if (!fc1.isEmpty()) vm.layers().setWeightFormat(fc1, "fp4-e2m1");
            List<LayerRow> first = rows.stream().filter(r -> r.kind() == LayerKind.LINEAR && r.name().startsWith("blocks.")).limit(1).toList();
            if (!first.isEmpty()) vm.layers().setWeightFormat(first, "int8-asym");
        } catch (RuntimeException e) {
            finish("screenshot mode: example configuration failed: " + e.getMessage());
            return;
        }
        var table = window.layerView().table();
        int idx = rows.stream().filter(r -> r.name().endsWith("mlp.fc1")).findFirst().map(r -> table.getItems().indexOf(r)).orElse(-1);
        if (idx >= 0) {
            table.getSelectionModel().selectRange(idx, Math.min(idx + 2, table.getItems().size()));
            table.scrollTo(Math.max(0, idx - 4));
        }
        after(800, () -> {
            if (snapshot(FILES.get(0), window.root())) next();
        });
    }

    private void generation() {
        window.showGeneration();
        vm.generation().stepsProperty().set(steps);
        vm.generation().imageCountProperty().set(16);
        vm.generation().followLatestProperty().set(true);
        vm.quant().baselineProperty().set(vm.quant().choiceFor("rtn"));
        job("side-by-side generation", vm::generate, () -> {
            if (!snapshot(FILES.get(1), window.root())) return;
            vm.generation().followLatestProperty().set(false);
            GenerationResult r = vm.generation().fpResultProperty().get();
            vm.generation().selectedFrameProperty().set(Math.max(0, r.frames() / 4));
            after(800, () -> {
                if (snapshot(FILES.get(2), window.root())) next();
            });
        });
    }

    private void distributions() {
        String layer = vm.layers().rows().stream().filter(r -> r.kind() == LayerKind.LINEAR && r.name().contains("attn.qkv"))
                .map(LayerRow::name).findFirst().orElse(vm.layers().rows().stream().filter(LayerRow::weightQuantizable).map(LayerRow::name)
                        .findFirst().orElse(""));
        vm.distributions().layerProperty().set(layer);
        window.showDistributions();
        job("histograms", vm::runDistributions, () -> {
            var r = vm.distributions().resultProperty().get();
            vm.distributions().frameProperty().set(Math.max(0, r.frames() / 3));
            after(800, () -> {
                if (snapshot(FILES.get(3), window.root())) next();
            });
        });
    }

    private void temporal() {
        window.showTemporal();
        TemporalViewModel t = vm.temporal();
        vm.quant().setExtraOptions("tfmq", Map.of("tiar_iters", 200));
        vm.quant().calibrationImagesProperty().set(8);
        for (TemporalViewModel.Method m : TemporalViewModel.Method.values()) t.shownProperty(m).set(true);
        job("temporal analysis", vm::calibrateTemporal, () -> {
            t.tiarProperty().set(true);
            t.fscProperty().set(true);
            t.cacheProperty().set(false);
            t.selectionProperty().set(false);
            vm.applyTemporalSwitches();   // the configuration becomes TIAR + FSC, an evaluated method: plotted at once
            t.mismatchOfProperty().set(TemporalViewModel.Method.NONE.label());
            waitFor(() -> !vm.jobs().isBusy(), "the temporal re-plot", () -> after(1000, () -> {
                if (snapshot(FILES.get(4), window.root())) next();
            }));
        });
    }

    private void sensitivity() {
        window.showSensitivity();
        vm.sensitivity().lambdasProperty().set("0.03, 0.1, 0.3, 1");
        vm.sensitivity().imagesProperty().set(16);
        job("perturbation sweep", vm::runPerturbation, () -> job("layer sensitivity", vm::runLayerSensitivity, () -> after(800, () -> {
            if (snapshot(FILES.get(5), window.root())) next();
        })));
    }

    private void budget() {
        vm.budget().strategyProperty().set(BudgetViewModel.Strategy.GREEDY);
        vm.budget().candidatesProperty().set("int8-asym, int4-asym");
        vm.budget().budgetProperty().set(Math.max(4.5, Math.round(vm.layers().averageWeightBits() * 4 - 4) / 4.0));
        BudgetViewModel.Proposal[] got = {null};
        job("bit budget", () -> vm.runBudget(p -> got[0] = p), () -> {
            BudgetViewModel.Proposal p = got[0];
            Dialog<ButtonType> d = DiffDialog.create(window.stage(), "Bit budget result", String.format(java.util.Locale.ROOT,
                    "%s\nAverage weight bits %.3f → %.3f", p.note(), p.bitsBefore(), p.bitsAfter()), p.diff(), null);
            d.show();
            after(800, () -> {
                boolean ok = snapshot(FILES.get(6), d.getDialogPane());
                d.close();
                if (ok) next();
            });
        });
    }

    private boolean snapshot(String name, Node node) {
        try {
            WritableImage img = node.snapshot(null, null);
            BufferedImage b = SwingFXUtils.fromFXImage(img, null);
            Files.createDirectories(dir);
            ImageGrid.writePng(b, dir.resolve(name));
            return true;
        } catch (IOException | RuntimeException e) {
            finish("screenshot mode: cannot write " + dir.resolve(name) + ": " + e.getMessage());
            return false;
        }
    }

    private void waitFor(BooleanSupplier condition, String what, Runnable then) {
        if (finished) return;
        if (condition.getAsBoolean()) {
            then.run();
            return;
        }
        if (System.currentTimeMillis() > deadline) {
            finish("screenshot mode: timed out waiting for " + what);
            return;
        }
        after(200, () -> waitFor(condition, what, then));
    }

    private static void after(long millis, Runnable r) {
        PauseTransition p = new PauseTransition(Duration.millis(Math.max(1, millis)));
        p.setOnFinished(e -> r.run());
        p.play();
    }

    private void finish(String error) {
        if (finished) return;
        finished = true;
        done.accept(error);
    }
}
