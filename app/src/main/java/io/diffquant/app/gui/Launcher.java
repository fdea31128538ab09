package io.diffquant.app.gui;

import javafx.application.Application;

import java.nio.file.Path;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Starts the JavaFX studio from a plain main class, so the app runs with JavaFX on the class path (the linux
 * javafx-graphics jar carries the native libraries): {@code bin/diffquant studio} ends up in {@link #launch}.
 */
public final class Launcher {
    /** Kept strongly referenced so the level sticks: silences JavaFX's "unsupported configuration" class-path warning. */
    private static final Logger JAVAFX_LOG = Logger.getLogger("javafx");
    private static volatile StudioOptions options;
    private static volatile int exitCode;
    private static volatile String failure;

    private Launcher() {}

    /** Runs the studio until its window is closed (blocks); returns the exit code (non-zero if screenshot mode failed). */
    public static int launch(StudioOptions o) {
        options = o;
        exitCode = 0;
        failure = null;
        JAVAFX_LOG.setLevel(Level.SEVERE);
        Application.launch(StudioApp.class);
        return exitCode;
    }

    static StudioOptions options() {
        StudioOptions o = options;
        return o != null ? o : StudioOptions.fromSystem(null, null, 25, 0);
    }

    /** Marks the run as failed (screenshot mode) with a message for the command line. */
    static void fail(String message) {
        failure = message;
        exitCode = 1;
    }

    /** Why the run failed, or null. */
    public static String failure() { return failure; }

    /** {@code Launcher [--model DIR] [--screenshot DIR]}; the CLI's {@code diffquant studio} is the documented way. */
    public static void main(String[] args) {
        Path model = null, shots = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--model" -> model = Path.of(args[++i]);
                case "--screenshot" -> shots = Path.of(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'; usage: [--model DIR] [--screenshot DIR]");
            }
        }
        System.exit(launch(StudioOptions.fromSystem(model, shots, 25, 0)));
    }
}
