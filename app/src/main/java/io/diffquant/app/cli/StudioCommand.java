package io.diffquant.app.cli;

import io.diffquant.app.gui.Launcher;
import io.diffquant.app.gui.StudioOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code diffquant studio}: opens the desktop laboratory (JavaFX), or renders its panels to PNG files and exits. */
@Command(name = "studio", mixinStandardHelpOptions = true,
        description = {"Opens DiffQuant Studio, the desktop laboratory (needs a display; under no display use xvfb-run).",
                "Start-up model: --model, else <root>/assets/dit-fmnist, else the last one opened."})
public final class StudioCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, paramLabel = "DIR",
            description = "model folder to open: DiT (config.json + model.safetensors) or diffusers UNet2DModel")
    Path model;

    @Option(names = "--screenshot", paramLabel = "DIR",
            description = "render each panel of the real app to DIR/*.png (after an FP32 sampling run) and exit")
    Path screenshotDir;

    @Option(names = "--screenshot-steps", paramLabel = "N", defaultValue = "25",
            description = "sampling steps of the run shown in screenshot mode (default: ${DEFAULT-VALUE})")
    int screenshotSteps;

    @Option(names = "--screenshot-linger", paramLabel = "MS", defaultValue = "0",
            description = "keep the window up MS milliseconds after the screenshots (for a screen grab; default 0)")
    long lingerMillis;

    @Override public Integer call() {
        if (model != null && !Files.isDirectory(model)) {
            System.err.println("error: --model " + model + ": not a folder (expected a model folder with config.json)");
            return 2;
        }
        if (screenshotSteps < 1 || lingerMillis < 0) {
            System.err.println("error: --screenshot-steps must be >= 1 and --screenshot-linger >= 0, got "
                    + screenshotSteps + " and " + lingerMillis);
            return 2;
        }
        String display = System.getenv("DISPLAY"), wayland = System.getenv("WAYLAND_DISPLAY");
        boolean monocle = "Monocle".equals(System.getProperty("glass.platform"));
        if ((display == null || display.isBlank()) && (wayland == null || wayland.isBlank()) && !monocle) {
            System.err.println("error: no display (DISPLAY is not set). Run on a desktop, or headless with "
                    + "xvfb-run bin/diffquant studio ... (see tools/screenshots/take-screenshots.sh)");
            return 2;
        }
        int rc;
        try {
            rc = Launcher.launch(StudioOptions.fromSystem(model, screenshotDir, screenshotSteps, lingerMillis));
        } catch (RuntimeException e) {
            System.err.println("error: the studio could not start: " + (e.getMessage() == null ? e : e.getMessage()));
            return 1;
        }
        if (rc != 0 && Launcher.failure() != null) System.err.println("error: " + Launcher.failure());
        else if (screenshotDir != null) System.out.println("screenshots written to " + screenshotDir.toAbsolutePath());
        return rc;
    }
}
