package io.diffquant.app.gui;

import javafx.animation.AnimationTimer;
import javafx.scene.Scene;
import javafx.scene.canvas.Canvas;
import javafx.scene.canvas.GraphicsContext;
import javafx.scene.control.Label;
import javafx.scene.layout.FlowPane;
import javafx.scene.layout.VBox;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The JavaFX text-layout race (see {@link FxTextLayoutGuard}): with the guard installed, text laid out on the FX thread
 * (60 labels changing every pulse) and on the render thread (200 canvas strings per pulse, with the combining and Greek
 * characters of the studio's axis labels) at the same time for 6 s does not corrupt the heap. Without the guard the
 * same load aborted the JVM within seconds in 4 of 4 stand-alone runs (glibc "malloc(): unaligned fastbin chunk
 * detected"), which would fail this whole test run.
 */
class FxTextLayoutGuardTest {
    private static final long SECONDS = 6;

    @BeforeAll static void start() throws Exception { FxToolkit.registerPrimaryStage(); }

    @AfterAll static void stop() throws Exception { FxToolkit.cleanupStages(); }

    @Test void concurrentTextLayoutOnTheFxAndRenderThreadsSurvives() throws Exception {
        assertTrue(WaitForAsyncUtils.asyncFx(FxTextLayoutGuard::install).get(), FxTextLayoutGuard.state());
        assertTrue(FxTextLayoutGuard.installed());
        assertTrue(FxTextLayoutGuard.install(), "idempotent");

        AtomicInteger frames = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(1);
        AnimationTimer[] timer = {null};
        FxToolkit.setupStage(stage -> {
            Canvas canvas = new Canvas(900, 500);
            FlowPane labels = new FlowPane();
            Label[] ls = new Label[60];
            for (int i = 0; i < ls.length; i++) labels.getChildren().add(ls[i] = new Label("-"));
            stage.setScene(new Scene(new VBox(canvas, labels), 1000, 900));
            stage.show();
            long start = System.nanoTime();
            timer[0] = new AnimationTimer() {
                @Override public void handle(long now) {
                    int n = frames.incrementAndGet();
                    GraphicsContext g = canvas.getGraphicsContext2D();
                    g.clearRect(0, 0, canvas.getWidth(), canvas.getHeight());
                    for (int i = 0; i < 200; i++)
                        g.fillText("x̂_0 λ=" + (n * 7 + i) + " ≥ ε·σ² step " + i, (i % 5) * 180, 10 + (i / 5) * 12);
                    for (int i = 0; i < ls.length; i++) ls[i].setText("t=" + (n + i) + " x̂₀ λ " + i);
                    if (now - start > TimeUnit.SECONDS.toNanos(SECONDS)) {
                        stop();
                        done.countDown();
                    }
                }
            };
            timer[0].start();
        });
        assertTrue(done.await(SECONDS + 120, TimeUnit.SECONDS), "the animation finished");
        WaitForAsyncUtils.waitForFxEvents();
        assertTrue(frames.get() >= 20, frames.get() + " frames: the text was laid out many times on both threads");
        assertEquals(true, FxTextLayoutGuard.installed(), "still holding the shared layout");
    }
}
