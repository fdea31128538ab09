package io.diffquant.app.gui.vm;

import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import javafx.concurrent.Task;

/**
 * A {@link Task} over the engine's pull-based {@link SamplingRun}: progress after every step, the frames so far as
 * the task's value (so the view updates live), cancellation honoured between steps (the step in flight finishes).
 */
public final class SamplingTask extends Task<GenerationResult> {
    private final SampleRequest request;
    private final String label;
    private volatile SamplingRun run;

    public SamplingTask(SampleRequest request, String label) {
        this.request = request;
        this.label = label;
        updateTitle("Sampling " + label);
    }

    public SampleRequest request() { return request; }

    @Override protected GenerationResult call() {
        SamplingRun r = Sampling.start(request);
        run = r;
        if (isCancelled()) r.cancel();
        int total = r.totalSteps();
        updateProgress(0, total);
        updateMessage("Sampling " + label + ": step 0 of " + total);
        return SamplingFrames.collect(r, label, this::isCancelled, snap -> {
            updateValue(snap);
            updateProgress(snap.stepsDone(), total);
            int[] ts = snap.timesteps();
            updateMessage("Sampling " + label + ": step " + snap.stepsDone() + " of " + total + " (t = " + ts[ts.length - 1] + ")");
        });
    }

    @Override protected void cancelled() {
        SamplingRun r = run;
        if (r != null) r.cancel();
    }
}
