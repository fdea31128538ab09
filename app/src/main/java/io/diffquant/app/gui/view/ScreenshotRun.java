package io.diffquant.app.gui.view;

import io.diffquant.app.gui.vm.GenerationResult;
import io.diffquant.app.gui.vm.LayerRow;
import io.diffquant.app.gui.vm.LayerTableViewModel;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.model.LayerKind;
import javafx.animation.PauseTransition;
import javafx.concurrent.Task;
import javafx.embed.swing.SwingFXUtils;
import javafx.scene.image.WritableImage;
import javafx.util.Duration;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * The studio's {@code --screenshot DIR} mode: waits for the start-up model, shows each panel, renders the window
 * with {@link javafx.scene.Node#snapshot} to PNG (written atomically) and reports back. The layer panel is shown
 * with an example configuration applied through the view model (block linear weights int4 per group of 32,
 * their input activations int8), the generation panel after a real FP32 sampling run, then scrubbed back to an
 * early step. Runs entirely on the FX thread with timers; engine work stays on the worker.
 */
public final class ScreenshotRun {
    /** Files written, in order. */
    public static final List<String> FILES = List.of("studio-layers.png", "studio-generation.png", "studio-generation-scrub.png");
    private static final long TIMEOUT_MS = 300_000;

    private final StudioViewModel vm;
    private final MainWindow window;
    private final Path dir;
    private final int steps;
    private final long lingerMillis;
    private final Consumer<String> done;
    private final long deadline;
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
        after(500, () -> waitFor(() -> !vm.jobs().isBusy(), "the model to load", this::layers));
    }

    private void layers() {
        if (vm.model() == null) {
            finish("screenshot mode: no model loaded (give --model DIR, or ship assets/dit-fmnist)");
            return;
        }
        window.showLayers();
        LayerTableViewModel lt = vm.layers();
        List<LayerRow> linear = lt.rows().stream().filter(r -> r.kind() == LayerKind.LINEAR || r.kind() == LayerKind.CONV2D)
                .filter(r -> r.name().startsWith("blocks.") || r.name().contains("_blocks.") || r.name().startsWith("mid_block."))
                .toList();
        try {
            lt.setWeightFormat(linear, "int4-asym");
            lt.setWeightGranularity(linear, "group32");
            lt.setActivationFormat(linear, "int8-asym");
        } catch (RuntimeException e) {
            finish("screenshot mode: example configuration failed: " + e.getMessage());
            return;
        }
        if (!linear.isEmpty()) {
            var table = window.layerView().table();
            int idx = table.getItems().indexOf(linear.getFirst());
            if (idx >= 0) table.getSelectionModel().selectRange(idx, Math.min(idx + 3, table.getItems().size()));
        }
        after(600, () -> {
            if (!snapshot(FILES.get(0))) return;
            generation();
        });
    }

    private void generation() {
        window.showGeneration();
        vm.generation().stepsProperty().set(steps);
        vm.generation().imageCountProperty().set(16);
        vm.generation().followLatestProperty().set(true);
        Task<?> task = vm.generate();
        if (task == null) {
            finish("screenshot mode: generation could not start");
            return;
        }
        waitFor(() -> switch (task.getState()) {
            case SUCCEEDED, FAILED, CANCELLED -> true;
            default -> false;
        }, "sampling to finish", () -> {
            if (task.getState() != javafx.concurrent.Worker.State.SUCCEEDED) {
                finish("screenshot mode: sampling " + task.getState().name().toLowerCase() + ": "
                        + (task.getException() == null ? "" : task.getException().getMessage()));
                return;
            }
            after(600, () -> {
                if (!snapshot(FILES.get(1))) return;
                vm.generation().followLatestProperty().set(false);
                GenerationResult r = vm.generation().fpResultProperty().get();
                vm.generation().selectedFrameProperty().set(Math.max(0, r.frames() / 4));
                after(600, () -> {
                    if (!snapshot(FILES.get(2))) return;
                    after(lingerMillis, () -> finish(null));
                });
            });
        });
    }

    private boolean snapshot(String name) {
        try {
            WritableImage img = window.root().snapshot(null, null);
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
