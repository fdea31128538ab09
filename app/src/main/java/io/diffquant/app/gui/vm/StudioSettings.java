package io.diffquant.app.gui.vm;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * What the studio remembers between runs (window geometry, last and recent model folders, the last session), stored as
 * JSON (default {@code ~/.config/diffquant/studio.json}) and written atomically. A missing or unreadable file gives the
 * defaults (and a log line), never a failed start.
 *
 * @param x, y, width, height window geometry (NaN x/y = let the window system place it)
 * @param maximized            window maximized
 * @param lastModel            the last model folder opened successfully, or null
 * @param recentModels         most recent first, at most {@link #MAX_RECENT}
 * @param selectedTab          index of the panel tab last shown
 * @param session              the last session (method, layer overrides, generation settings; see
 *                             {@code StudioViewModel.captureSession}), or null
 */
public record StudioSettings(double x, double y, double width, double height, boolean maximized, String lastModel,
                             List<String> recentModels, int selectedTab, com.fasterxml.jackson.databind.node.ObjectNode session) {
    public static final int MAX_RECENT = 8;
    private static final Logger LOG = Logger.getLogger(StudioSettings.class.getName());

    public StudioSettings {
        recentModels = List.copyOf(recentModels == null ? List.of() : recentModels);
        if (!(width >= 200) || !(height >= 150)) { width = 1280; height = 820; }
    }

    public static StudioSettings defaults() {
        return new StudioSettings(Double.NaN, Double.NaN, 1280, 820, false, null, List.of(), 0, null);
    }

    public StudioSettings withWindow(double nx, double ny, double w, double h, boolean max) {
        return new StudioSettings(nx, ny, w, h, max, lastModel, recentModels, selectedTab, session);
    }

    public StudioSettings withSelectedTab(int tab) {
        return new StudioSettings(x, y, width, height, maximized, lastModel, recentModels, tab, session);
    }

    /** Remembers a model folder as the last one and at the head of the recent list (no duplicates). */
    public StudioSettings withOpenedModel(Path folder) {
        String p = folder.toAbsolutePath().normalize().toString();
        List<String> r = new ArrayList<>();
        r.add(p);
        for (String s : recentModels) if (!s.equals(p) && r.size() < MAX_RECENT) r.add(s);
        return new StudioSettings(x, y, width, height, maximized, p, r, selectedTab, session);
    }

    public StudioSettings withSession(com.fasterxml.jackson.databind.node.ObjectNode s) {
        return new StudioSettings(x, y, width, height, maximized, lastModel, recentModels, selectedTab, s);
    }

    /** Reads the settings file; defaults when it is missing or not valid (logged with the file name). */
    public static StudioSettings load(Path file) {
        if (file == null || !Files.isRegularFile(file)) return defaults();
        try {
            JsonView v = Json.read(file);
            StudioSettings d = defaults();
            return new StudioSettings(v.optDouble("x", d.x()), v.optDouble("y", d.y()), v.optDouble("width", d.width()),
                    v.optDouble("height", d.height()), v.optBoolean("maximized", false), v.optString("lastModel", null),
                    v.optStringList("recentModels", List.of()), v.optInt("selectedTab", 0),
                    v.node().get("session") instanceof ObjectNode o ? o : null);
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.WARNING, "ignoring unreadable studio settings " + file + ": " + e.getMessage());
            return defaults();
        }
    }

    /** Writes the settings atomically (temp file + rename), creating the folder. */
    public void save(Path file) throws IOException {
        ObjectNode o = Json.object();
        if (!Double.isNaN(x)) o.put("x", x);
        if (!Double.isNaN(y)) o.put("y", y);
        o.put("width", width);
        o.put("height", height);
        o.put("maximized", maximized);
        if (lastModel != null) o.put("lastModel", lastModel);
        ArrayNode a = o.putArray("recentModels");
        recentModels.forEach(a::add);
        o.put("selectedTab", selectedTab);
        if (session != null) o.set("session", session);
        Path dir = file.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
        Json.write(file, o);
    }
}
