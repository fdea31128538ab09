package io.diffquant.app.gui;

import java.nio.file.Path;

/**
 * How the studio is started (a request record, Habit 6): the model folder to open, the screenshot mode, the
 * installation root and the settings file. {@link #fromSystem} is the one place that reads system properties.
 *
 * @param model           model folder to open at start-up, or null (shipped dit-fmnist, else the last one)
 * @param screenshotDir   when set: render each panel to a PNG in this folder and exit
 * @param screenshotSteps sampling steps of the generation shown in screenshot mode
 * @param lingerMillis    screenshot mode: keep the window open this long after the PNGs are written (for an
 *                        external screen grab)
 * @param root            installation root (system property diffquant.root), or null
 * @param settingsFile    where settings are remembered (system property diffquant.studio.settings, default
 *                        ~/.diffquant/studio.json), or null to remember nothing
 */
public record StudioOptions(Path model, Path screenshotDir, int screenshotSteps, long lingerMillis, Path root, Path settingsFile) {

    public StudioOptions {
        if (screenshotSteps < 1) throw new IllegalArgumentException("screenshot steps must be >= 1, got " + screenshotSteps);
        if (lingerMillis < 0) throw new IllegalArgumentException("linger must be >= 0 ms, got " + lingerMillis);
    }

    /** Options for an interactive start (or screenshot mode when {@code screenshotDir} is set), from system properties. */
    public static StudioOptions fromSystem(Path model, Path screenshotDir, int screenshotSteps, long lingerMillis) {
        String root = System.getProperty("diffquant.root");
        String settings = System.getProperty("diffquant.studio.settings");
        Path settingsFile = settings != null ? (settings.isBlank() ? null : Path.of(settings))
                : Path.of(System.getProperty("user.home"), ".diffquant", "studio.json");
        return new StudioOptions(model, screenshotDir, screenshotSteps, lingerMillis, root == null ? null : Path.of(root), settingsFile);
    }

    public boolean screenshotMode() { return screenshotDir != null; }
}
