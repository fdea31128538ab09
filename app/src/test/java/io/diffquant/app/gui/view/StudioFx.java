package io.diffquant.app.gui.view;

import io.diffquant.app.gui.StudioApp;
import io.diffquant.app.gui.StudioOptions;
import javafx.application.Platform;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** What the headless studio tests share: starting and stopping the real app, and waiting for a condition on the FX thread. */
final class StudioFx {
    private StudioFx() {}

    /** Starts the studio with these options on the TestFX primary stage. */
    static StudioApp start(StudioOptions options) throws TimeoutException {
        FxToolkit.registerPrimaryStage();
        return (StudioApp) FxToolkit.setupApplication(() -> new StudioApp(options));
    }

    /** Stops the app (if it started) and closes the test stages. */
    static void stop(StudioApp app) throws TimeoutException {
        if (app != null) FxToolkit.cleanupApplication(app);
        FxToolkit.cleanupStages();
    }

    /** Waits up to {@code seconds} for a condition evaluated on the FX thread (an exception counts as false). */
    static void waitFor(int seconds, Callable<Boolean> condition) throws TimeoutException {
        WaitForAsyncUtils.waitFor(seconds, TimeUnit.SECONDS, () -> {
            Boolean[] ok = {false};
            Platform.runLater(() -> {
                try { ok[0] = condition.call(); } catch (Exception e) { ok[0] = false; }
            });
            WaitForAsyncUtils.waitForFxEvents();
            return ok[0];
        });
    }
}
