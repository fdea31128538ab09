package io.diffquant.app.gui.view;

import javafx.application.Platform;
import javafx.scene.Scene;
import javafx.scene.control.Label;
import javafx.scene.layout.StackPane;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testfx.api.FxToolkit;
import org.testfx.util.WaitForAsyncUtils;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link FxBlockWatch} can fail: a handler that sleeps 150 ms, one that waits 150 ms for a lock another thread holds,
 * and one that computes for 150 ms of CPU time are each reported as at least 140 ms of handler time in one pulse gap
 * (JFR timestamps and thread CPU clocks are exact to well under 10 ms), while an animated but otherwise idle window
 * stays far below the 100 ms bar, whatever the machine's load.
 */
class FxBlockWatchTest {
    static final long BLOCK_MS = 150;
    @TempDir static Path tmp;
    private static Label label;

    @BeforeAll static void start() throws Exception {
        FxToolkit.registerPrimaryStage();
        FxToolkit.setupStage(s -> {
            label = new Label("0");
            s.setScene(new Scene(new StackPane(label), 200, 100));
            s.show();
        });
    }

    @AfterAll static void stop() throws Exception { FxToolkit.cleanupStages(); }

    @Test void idleWindowStaysUnderTheBar() throws Exception {
        FxBlockWatch w = watch(null);
        assertTrue(w.gaps().size() > 5, "pulses kept coming: " + w.report());
        assertTrue(w.maxBlockedNanos() < 50_000_000L, "an idle window: " + w.report());
    }

    @Test void sleepOnTheFxThreadIsDetected() throws Exception {
        FxBlockWatch w = watch(() -> {
            try { Thread.sleep(BLOCK_MS); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
        });
        assertDetected(w);
        assertTrue(w.longestWait().where().contains(FxBlockWatchTest.class.getName()), w.report());
    }

    @Test void lockWaitOnTheFxThreadIsDetected() throws Exception {
        ReentrantLock lock = new ReentrantLock();
        CountDownLatch held = new CountDownLatch(1);
        Thread holder = new Thread(() -> {
            lock.lock();
            try {
                held.countDown();
                Thread.sleep(BLOCK_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                lock.unlock();
            }
        }, "lock-holder");
        FxBlockWatch w = watch(() -> {
            holder.start();
            try { held.await(); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            lock.lock();   // waits until the holder's sleep is over
            lock.unlock();
        });
        holder.join();
        assertDetected(w);
    }

    @Test void computationOnTheFxThreadIsDetected() throws Exception {
        var mx = ManagementFactory.getThreadMXBean();
        FxBlockWatch w = watch(() -> {
            long c0 = mx.getCurrentThreadCpuTime();
            double x = 0;
            while (mx.getCurrentThreadCpuTime() - c0 < BLOCK_MS * 1_000_000L) for (int i = 0; i < 10_000; i++) x += Math.sqrt(i + x);
            label.setText(Double.toString(x));
        });
        assertDetected(w);
    }

    private static void assertDetected(FxBlockWatch w) {
        assertTrue(w.maxBlockedNanos() >= (BLOCK_MS - 10) * 1_000_000L, "the block was not seen: " + w.report());
    }

    /** Watches 400 ms of an animated window, then the handler (if any), then 400 ms more. */
    private static FxBlockWatch watch(Runnable handler) throws Exception {
        FxBlockWatch w = new FxBlockWatch();
        WaitForAsyncUtils.asyncFx(w::start).get(60, TimeUnit.SECONDS);
        WaitForAsyncUtils.sleep(400, TimeUnit.MILLISECONDS);
        if (handler != null) WaitForAsyncUtils.asyncFx(handler).get(60, TimeUnit.SECONDS);
        WaitForAsyncUtils.sleep(400, TimeUnit.MILLISECONDS);
        WaitForAsyncUtils.asyncFx(w::stop).get(60, TimeUnit.SECONDS);
        w.collect(tmp);
        System.out.println("FxBlockWatchTest: " + w.report());
        return w;
    }
}
