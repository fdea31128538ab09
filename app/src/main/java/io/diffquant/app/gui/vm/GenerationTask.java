package io.diffquant.app.gui.vm;

import javafx.concurrent.Task;

/**
 * A {@link Task} over a {@link GenerationRun}: the outcome so far as the task's value after every step (the panel
 * updates live), overall progress and a message, cancellation between steps (and inside a calibration step).
 */
public final class GenerationTask extends Task<GenerationOutcome> {
    private final GenerationRun run;

    public GenerationTask(GenerationRun run, String title) {
        this.run = run;
        updateTitle(title);
    }

    @Override protected GenerationOutcome call() throws Exception {
        updateProgress(0, 1);
        return run.run(this::isCancelled, this::updateValue, (f, m) -> {
            updateProgress(f, 1);
            updateMessage(m);
        });
    }

    @Override protected void cancelled() { run.cancel(); }
}
