package io.diffquant.app.gui.vm;

import javafx.concurrent.Task;

import java.util.function.BooleanSupplier;

/**
 * A {@link Task} over a piece of engine work that reports progress through a sink and checks a cancel flag between its
 * steps (analyses, budget assignment): the toolkit-free work is a {@link Work}, so view-model tests run it directly.
 */
public final class WorkTask<T> extends Task<T> {
    /** Progress sink: fraction in [0, 1] (negative: indeterminate) and a message. */
    public interface Progress { void report(double fraction, String message); }

    /** The work: runs on the worker, checks {@code cancelled} between steps. */
    @FunctionalInterface
    public interface Work<T> { T run(BooleanSupplier cancelled, Progress progress) throws Exception; }

    private final Work<T> work;
    private final Runnable onCancel;
    private final String name;

    public WorkTask(String title, Work<T> work, Runnable onCancel) {
        this.work = work;
        this.name = title;
        this.onCancel = onCancel;
        updateTitle(title);
    }

    @Override protected T call() throws Exception {
        updateProgress(-1, 1);
        updateMessage(name + " ...");   // not getTitle(): the title property is FX-thread only
        return work.run(this::isCancelled, (f, m) -> {
            if (f < 0) updateProgress(-1, 1); else updateProgress(Math.min(1, f), 1);
            if (m != null) updateMessage(m);
        });
    }

    @Override protected void cancelled() {
        if (onCancel != null) onCancel.run();
    }
}
