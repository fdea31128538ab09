package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.preset.CalibrationJob;
import javafx.concurrent.Task;

/**
 * A {@link Task} over the engine's pull-based {@link CalibrationJob} (the CLI's {@code calibrate}): progress and a
 * message after every step, cancellation between steps and inside long steps.
 */
public final class CalibrationTask extends Task<QuantConfig> {
    private final QuantViewModel.Target target;
    private final CalibrationJob.Request request;
    private volatile CalibrationJob job;

    public CalibrationTask(QuantViewModel.Target target, CalibrationJob.Request request) {
        this.target = target;
        this.request = request;
        updateTitle("Calibrating " + target.method().label());
    }

    public QuantViewModel.Target target() { return target; }

    @Override protected QuantConfig call() throws Exception {
        updateProgress(0, 1);
        updateMessage("Calibrating " + target.method().label() + " ...");
        return Calibrations.run(request, this::isCancelled, j -> job = j, p -> {
            updateProgress(Calibrations.fraction(p), 1);
            updateMessage("Calibrating " + target.method().label() + ": [" + p.phase().name().toLowerCase() + "] " + p.message());
        });
    }

    @Override protected void cancelled() {
        CalibrationJob j = job;
        if (j != null) j.cancel();
    }
}
