package io.diffquant.app.gui.vm;

import javafx.beans.property.ReadOnlyBooleanProperty;
import javafx.beans.property.ReadOnlyBooleanWrapper;
import javafx.beans.property.ReadOnlyObjectProperty;
import javafx.beans.property.ReadOnlyObjectWrapper;
import javafx.concurrent.Task;
import javafx.concurrent.Worker;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Runs the app's background jobs (model loading, sampling) one at a time on a daemon worker thread, so the FX thread
 * never runs engine code. The current job's progress, message and cancel drive the status bar. Call from the FX
 * thread.
 */
public final class JobRunner {
    private final ExecutorService executor;
    private final ReadOnlyObjectWrapper<Task<?>> current = new ReadOnlyObjectWrapper<>(this, "current");
    private final ReadOnlyBooleanWrapper busy = new ReadOnlyBooleanWrapper(this, "busy");

    public JobRunner() {
        this(Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "diffquant-worker");
            t.setDaemon(true);
            return t;
        }));
    }

    public JobRunner(ExecutorService executor) { this.executor = executor; }

    /** The running job, or null. */
    public ReadOnlyObjectProperty<Task<?>> currentProperty() { return current.getReadOnlyProperty(); }
    public Task<?> current() { return current.get(); }
    public ReadOnlyBooleanProperty busyProperty() { return busy.getReadOnlyProperty(); }
    public boolean isBusy() { return busy.get(); }

    /**
     * Starts a job; throws if one is running (the commands that start jobs are disabled while busy). The job stops
     * being current when it succeeds, fails or is cancelled.
     */
    public <T> Task<T> submit(Task<T> task) {
        if (busy.get()) throw new IllegalStateException("a background job is running (" + current.get().getTitle()
                + "); cancel it or wait for it to finish");
        current.set(task);
        busy.set(true);
        task.stateProperty().addListener((o, a, s) -> {
            if (s == Worker.State.SUCCEEDED || s == Worker.State.FAILED || s == Worker.State.CANCELLED) {
                if (current.get() == task) {
                    current.set(null);
                    busy.set(false);
                }
            }
        });
        executor.execute(task);
        return task;
    }

    /** Cancels the current job (sampling stops between steps); false if none runs. */
    public boolean cancelCurrent() {
        Task<?> t = current.get();
        return t != null && t.cancel();
    }

    /** Cancels the current job and stops the worker (waits up to {@code waitMillis} for it). */
    public void shutdown(long waitMillis) {
        cancelCurrent();
        executor.shutdownNow();
        try {
            executor.awaitTermination(waitMillis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
