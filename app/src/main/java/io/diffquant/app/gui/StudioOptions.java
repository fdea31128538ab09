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
 * @param settingsFile    where settings and the last session are remembered (system property diffquant.studio.settings,
 *                        default $XDG_CONFIG_HOME/diffquant/studio.json, i.e. ~/.config/diffquant/studio.json), or null to
 *                        remember nothing
 * @param cacheDir        where calibration data is recorded (system property diffquant.studio.cache, default
 *                        $XDG_CACHE_HOME/diffquant/calibration, i.e. ~/.cache/diffquant/calibration)
 */
public record StudioOptions(Path model, Path screenshotDir, int screenshotSteps, long lingerMillis, Path root, Path settingsFile,
                            Path cacheDir) {

    public StudioOptions {
        if (screenshotSteps < 1) throw new IllegalArgumentException("screenshot steps must be >= 1, got " + screenshotSteps);
        if (lingerMillis < 0) throw new IllegalArgumentException("linger must be >= 0 ms, got " + lingerMillis);
    }

    public StudioOptions(Path model, Path screenshotDir, int screenshotSteps, long lingerMillis, Path root, Path settingsFile) {
        this(model, screenshotDir, screenshotSteps, lingerMillis, root, settingsFile, null);
    }

    /** Options for an interactive start (or screenshot mode when {@code screenshotDir} is set), from system properties. */
    public static StudioOptions fromSystem(Path model, Path screenshotDir, int screenshotSteps, long lingerMillis) {
        String root = System.getProperty("diffquant.root");
        String settings = System.getProperty("diffquant.studio.settings");
        String home = System.getProperty("user.home");
        String xdgConfig = System.getenv("XDG_CONFIG_HOME"), xdgCache = System.getenv("XDG_CACHE_HOME");
        Path configDir = xdgConfig != null && !xdgConfig.isBlank() ? Path.of(xdgConfig) : Path.of(home, ".config");
        Path settingsFile = settings != null ? (settings.isBlank() ? null : Path.of(settings)) : configDir.resolve("diffquant").resolve("studio.json");
        String cache = System.getProperty("diffquant.studio.cache");
        Path cacheDir = cache != null && !cache.isBlank() ? Path.of(cache)
                : (xdgCache != null && !xdgCache.isBlank() ? Path.of(xdgCache) : Path.of(home, ".cache")).resolve("diffquant").resolve("calibration");
        return new StudioOptions(model, screenshotDir, screenshotSteps, lingerMillis, root == null ? null : Path.of(root), settingsFile, cacheDir);
    }

    public boolean screenshotMode() { return screenshotDir != null; }
}
