package io.diffquant.app.gui.view;

import io.diffquant.app.gui.StudioApp;
import io.diffquant.app.gui.StudioOptions;
import io.diffquant.app.gui.vm.MethodChoice;
import io.diffquant.app.gui.vm.StudioSettings;
import io.diffquant.app.gui.vm.StudioViewModel;
import io.diffquant.app.gui.vm.TinyModels;
import javafx.application.Platform;
import javafx.scene.control.Menu;
import javafx.scene.control.MenuBar;
import javafx.scene.control.MenuItem;
import javafx.stage.Stage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testfx.api.FxRobot;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Start-up and what the window remembers, through the real app (TestFX on Monocle) started twice on one settings file:
 * with no model given it opens the shipped {@code assets/dit-fmnist} (not the last model of the settings), places the
 * window where the settings say and shows the remembered tab; the Recent menu lists the remembered folders. On close it
 * writes the window's geometry, tab and the session (method and layer edits); a second start restores them onto a
 * window moved elsewhere in between, and picking a recent folder from the menu opens it.
 */
class StudioStartupTest {
    private static final String LAYER = "blocks.0.mlp.fc1";
    @TempDir static Path tmp;
    private static StudioApp app;
    private final FxRobot robot = new FxRobot();

    @AfterAll static void stop() throws Exception { StudioFx.stop(app); }

    @Test void opensTheShippedModelAndRemembersWindowTabSessionAndRecentFolders() throws Exception {
        Path root = Path.of(System.getProperty("diffquant.root", "..")).toAbsolutePath().normalize();
        Path shipped = root.resolve("assets/dit-fmnist");
        assertTrue(Files.isRegularFile(shipped.resolve("config.json")), "the shipped model is missing: " + shipped);
        Path other = TinyModels.ditFolder(tmp.resolve("other-dit"), 2);
        Path settingsFile = tmp.resolve("studio.json");
        StudioSettings.defaults().withOpenedModel(other).withWindow(40, 30, 1000, 700, false).withSelectedTab(3).save(settingsFile);
        StudioOptions options = new StudioOptions(null, null, 5, 0, root, settingsFile, tmp.resolve("calibration-cache"));
        Stage stage = FxToolkit.registerPrimaryStage();

        // --- first start: the shipped model, the remembered geometry and tab, the recent list
        app = (StudioApp) FxToolkit.setupApplication(() -> new StudioApp(options));
        StudioViewModel vm = app.viewModel();
        waitFor(180, () -> vm.model() != null && !vm.jobs().isBusy());
        assertEquals(shipped, vm.model().folder().toAbsolutePath().normalize(), "no --model: the shipped dit-fmnist opens");
        assertTrue(vm.titleProperty().get().contains("dit-fmnist"), vm.titleProperty().get());
        assertEquals(List.of(40.0, 30.0, 1000.0, 700.0), WaitForAsyncUtils.asyncFx(() -> geometry(stage)).get());
        assertEquals(3, WaitForAsyncUtils.asyncFx(() -> app.window().selectedTab()).get());
        assertEquals(List.of(shipped.toString(), other.toString()), WaitForAsyncUtils.asyncFx(StudioStartupTest::recentItems).get(),
                "the Recent menu: the folder just opened, then the remembered one");

        // the user edits the table, picks a tab and moves the window, then closes the app
        robot.interact(() -> {
            vm.applyPreset(new MethodChoice("rtn", Map.of("w_bits", 4)));
            vm.layers().setWeightFormat(List.of(vm.layers().row(LAYER)), "int8-sym");
            app.window().selectTab(1);
            stage.setX(60);
            stage.setY(50);
            stage.setWidth(1100);
            stage.setHeight(720);
        });
        FxToolkit.cleanupApplication(app);
        StudioSettings saved = StudioSettings.load(settingsFile);
        assertEquals(List.of(60.0, 50.0, 1100.0, 720.0), List.of(saved.x(), saved.y(), saved.width(), saved.height()));
        assertEquals(1, saved.selectedTab());
        assertNotNull(saved.session(), "the last session is written");

        // --- second start on a window moved elsewhere: geometry, tab and the session come back
        robot.interact(() -> {
            stage.setX(0);
            stage.setY(0);
            stage.setWidth(640);
            stage.setHeight(480);
        });
        app = (StudioApp) FxToolkit.setupApplication(() -> new StudioApp(options));
        StudioViewModel vm2 = app.viewModel();
        waitFor(180, () -> vm2.model() != null && !vm2.jobs().isBusy());
        assertEquals(List.of(60.0, 50.0, 1100.0, 720.0), WaitForAsyncUtils.asyncFx(() -> geometry(stage)).get());
        assertEquals(1, WaitForAsyncUtils.asyncFx(() -> app.window().selectedTab()).get());
        assertEquals("rtn", vm2.layers().method().preset());
        assertEquals("int8-sym", vm2.layers().row(LAYER).spec().weightFormat(), "the layer edit of the last session");
        assertEquals("int4-asym", vm2.layers().row("blocks.1.mlp.fc1").spec().weightFormat());
        assertEquals(0, vm2.layers().history().undoSize(), "restoring is not an edit");

        // --- the model picker's recent list: File > Recent > the other folder opens it
        MenuItem item = WaitForAsyncUtils.asyncFx(() -> recentMenu().getItems().stream()
                .filter(i -> i.getText().equals(other.toString())).findFirst().orElseThrow()).get();
        robot.interact(item::fire);
        waitFor(120, () -> vm2.model() != null && !vm2.jobs().isBusy() && vm2.model().folder().endsWith("other-dit"));
        assertTrue(vm2.titleProperty().get().contains("other-dit"), vm2.titleProperty().get());
        assertEquals(other.toString(), WaitForAsyncUtils.asyncFx(StudioStartupTest::recentItems).get().getFirst(), "moved to the front");
    }

    private static List<Double> geometry(Stage s) { return List.of(s.getX(), s.getY(), s.getWidth(), s.getHeight()); }

    private static Menu recentMenu() {
        MenuBar bar = (MenuBar) app.window().tabs().getScene().lookup("#menu-bar");
        Menu file = bar.getMenus().stream().filter(m -> m.getText().equals("File")).findFirst().orElseThrow();
        return (Menu) file.getItems().stream().filter(i -> "Recent".equals(i.getText())).findFirst().orElseThrow();
    }

    private static List<String> recentItems() { return recentMenu().getItems().stream().map(MenuItem::getText).toList(); }

    private static void waitFor(int seconds, Callable<Boolean> condition) throws TimeoutException { StudioFx.waitFor(seconds, condition); }
}
