package io.diffquant.app.gui.vm;

import io.diffquant.engine.model.ModelFolder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Remembered settings (atomic JSON), the start-up model rule and error texts. */
class StudioSettingsTest {
    @TempDir Path tmp;

    @Test void roundTripAndRecentList() throws IOException {
        Path file = tmp.resolve("sub/studio.json");
        StudioSettings s = StudioSettings.defaults().withWindow(10, 20, 900, 700, false).withSelectedTab(1);
        for (int i = 0; i < 10; i++) s = s.withOpenedModel(tmp.resolve("m" + i));
        s = s.withOpenedModel(tmp.resolve("m3"));   // re-opened: moves to the front, no duplicate
        assertEquals(StudioSettings.MAX_RECENT, s.recentModels().size());
        assertEquals(tmp.resolve("m3").toString(), s.recentModels().get(0));
        assertEquals(tmp.resolve("m9").toString(), s.recentModels().get(1));
        assertEquals(1, s.recentModels().stream().filter(p -> p.endsWith("m3")).count());
        s.save(file);
        try (Stream<Path> files = Files.list(file.getParent())) {
            assertEquals(List.of(file), files.toList());   // no temp file left behind
        }
        StudioSettings back = StudioSettings.load(file);
        assertEquals(s, back);
        assertEquals(10, back.x(), 0.0);
        assertEquals(tmp.resolve("m3").toString(), back.lastModel());
    }

    @Test void missingOrCorruptFileGivesDefaults() throws IOException {
        assertEquals(StudioSettings.defaults().width(), StudioSettings.load(tmp.resolve("none.json")).width(), 0.0);
        Path bad = tmp.resolve("bad.json");
        Files.writeString(bad, "{ \"width\": ");
        StudioSettings s = StudioSettings.load(bad);
        assertTrue(Double.isNaN(s.x()));
        assertNull(s.lastModel());
        Files.writeString(bad, "{ \"width\": \"wide\" }");
        assertEquals(1280, StudioSettings.load(bad).width(), 0.0);
        Files.writeString(bad, "{ \"width\": 10, \"height\": 10 }");   // too small to use: defaults
        assertEquals(820, StudioSettings.load(bad).height(), 0.0);
    }

    @Test void startupModelPrefersExplicitThenShippedThenLast() throws IOException {
        Path root = tmp.resolve("root");
        Path last = Files.createDirectories(tmp.resolve("last"));
        StudioSettings s = StudioSettings.defaults().withOpenedModel(last);
        Path explicit = tmp.resolve("explicit");
        assertEquals(explicit, StudioViewModel.startupModel(explicit, root, s));
        assertEquals(last, StudioViewModel.startupModel(null, root, s));          // no shipped model yet
        Path shipped = Files.createDirectories(root.resolve("assets/dit-fmnist"));
        assertEquals(last, StudioViewModel.startupModel(null, root, s));          // a folder without config.json is not a model
        Files.writeString(shipped.resolve(ModelFolder.CONFIG), "{}");
        assertEquals(shipped, StudioViewModel.startupModel(null, root, s));
        assertEquals("", StudioViewModel.startupMessage(root));
        Path other = Files.createDirectories(tmp.resolve("other-root"));          // an installation without the model
        assertEquals(last, StudioViewModel.startupModel(null, other, s));
        String msg = StudioViewModel.startupMessage(other);
        assertTrue(msg.contains("assets/dit-fmnist") && msg.contains(other.resolve("assets/dit-fmnist").toString()), msg);
        Files.delete(last);
        assertNull(StudioViewModel.startupModel(null, other, s));                // the last one is gone
        assertNull(StudioViewModel.startupModel(null, other, StudioSettings.defaults()));
    }

    @Test void sessionIsSavedAndRestoredForTheSameWeights() throws IOException {
        io.diffquant.engine.model.dit.DiT m = TinyModels.dit(5);
        Path folder = TinyModels.ditFolder(tmp.resolve("tiny"), 5);
        Path file = tmp.resolve("studio.json");
        StudioViewModel a = new StudioViewModel(file, new JobRunner());
        a.modelLoadedForTest(folder, m);
        a.quant().applyPreset(new MethodChoice("rtn", java.util.Map.of("w_bits", 4)));
        a.layers().setWeightFormat(java.util.List.of(a.layers().row("blocks.0.mlp.fc1")), "int8-sym");
        a.generation().stepsProperty().set(7);
        a.quant().baselineProperty().set(MethodChoice.of("q-diffusion"));
        a.rememberSession();
        a.saveSettings();
        java.util.Map<String, LayerQuantSpec> before = a.layers().specs();

        StudioViewModel b = new StudioViewModel(file, new JobRunner());
        b.modelLoadedForTest(folder, m);
        assertEquals(before, b.layers().specs(), "the table comes back");
        assertEquals(a.layers().method(), b.layers().method());
        assertEquals(7, b.generation().stepsProperty().get());
        assertEquals("q-diffusion", b.quant().baselineProperty().get().preset());
        assertEquals(0, b.layers().history().undoSize(), "restoring is not an edit");

        // other weights: the generation settings come back, the layer table does not
        StudioViewModel c = new StudioViewModel(file, new JobRunner());
        c.modelLoadedForTest(folder, TinyModels.dit(6));
        assertEquals(7, c.generation().stepsProperty().get());
        assertEquals(MethodChoice.DEFAULT, c.layers().method());
        assertEquals(0, c.layers().quantizedLayersProperty().get());
    }

    @Test void windowGeometryAndTabAreRememberedAndAMaximizedWindowKeepsItsNormalBounds() throws IOException {
        Path file = tmp.resolve("studio.json");
        StudioViewModel a = new StudioViewModel(file, new JobRunner());
        a.rememberWindow(40, 30, 1000, 700, false, 3);
        a.saveSettings();
        StudioSettings s = StudioSettings.load(file);
        assertEquals(List.of(40.0, 30.0, 1000.0, 700.0), List.of(s.x(), s.y(), s.width(), s.height()));
        assertEquals(3, s.selectedTab());
        assertEquals(false, s.maximized());

        StudioViewModel b = new StudioViewModel(file, new JobRunner());   // a new start reads them back
        assertEquals(s, b.settings());
        b.rememberWindow(0, 0, 1600, 1000, true, 1);   // closed maximized: the normal bounds stay, the flag is set
        b.saveSettings();
        StudioSettings m = StudioSettings.load(file);
        assertEquals(List.of(40.0, 30.0, 1000.0, 700.0), List.of(m.x(), m.y(), m.width(), m.height()));
        assertTrue(m.maximized());
        assertEquals(1, m.selectedTab());
    }

    @Test void errorReportsNameTheFileAndSkipRepeatedMessages() {
        ErrorReport r = ErrorReport.of("Cannot open model folder", "/m", new NoSuchFileException("/m/config.json", null, "not a model folder"));
        assertEquals("/m/config.json: not a model folder", r.message());
        IllegalArgumentException inner = new IllegalArgumentException("tensor 'x' has shape [2]");
        RuntimeException outer = new RuntimeException("/m/model.safetensors: tensor 'x' has shape [2]", inner);
        assertEquals("/m/model.safetensors: tensor 'x' has shape [2]", ErrorReport.describe(outer));
        RuntimeException wrap = new RuntimeException("load failed", new AccessDeniedException("/m/w.safetensors"));
        assertEquals("load failed\n/m/w.safetensors", ErrorReport.describe(wrap));
        assertEquals("NullPointerException", ErrorReport.describe(new NullPointerException()));
        assertTrue(ErrorReport.describe(new OutOfMemoryError()).contains("heap"));
    }
}
