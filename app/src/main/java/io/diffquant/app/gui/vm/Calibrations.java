package io.diffquant.app.gui.vm;

import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.preset.CalibrationJob;

import java.io.IOException;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * Runs a {@link CalibrationJob} step by step on the calling (worker) thread, the way the CLI's {@code calibrate} does:
 * progress after every step, cancellation between steps (and inside long steps through {@link CalibrationJob#cancel()}).
 * The toolkit-free core of {@link CalibrationTask} and {@link GenerationTask}.
 */
public final class Calibrations {
    private Calibrations() {}

    /** Receives the job once it is prepared (so a cancel can reach it). */
    public interface JobSink { void started(CalibrationJob job); }

    /**
     * Calibrates and returns the config.
     * @throws CancellationException when {@code cancelled} says so between steps (or the job was cancelled)
     */
    public static QuantConfig run(CalibrationJob.Request request, BooleanSupplier cancelled, JobSink sink,
                                  Consumer<CalibrationJob.Progress> progress) throws IOException {
        CalibrationJob job = CalibrationJob.start(request);
        if (sink != null) sink.started(job);
        while (job.hasNext()) {
            if (cancelled.getAsBoolean()) {
                job.cancel();
                throw new CancellationException("calibration cancelled in phase " + job.phase());
            }
            CalibrationJob.Progress p = job.next();
            if (progress != null) progress.accept(p);
        }
        if (cancelled.getAsBoolean()) throw new CancellationException("calibration cancelled in phase " + job.phase());
        return job.result();
    }

    /** A fraction in [0, 1] of the whole job for a progress report (phases weighted by their usual cost). */
    public static double fraction(CalibrationJob.Progress p) {
        double within = p.total() <= 0 ? 0 : Math.max(0, Math.min(1, (double) p.done() / p.total()));
        return switch (p.phase()) {
            case RECORD -> 0.35 * within;
            case SEARCH -> 0.35 + 0.25 * within;
            case WEIGHTS -> 0.60 + 0.05 * within;
            case RECONSTRUCT -> 0.65 + 0.20 * within;
            case ACTIVATIONS -> 0.85 + 0.08 * within;
            case TEMPORAL -> 0.93 + 0.07 * within;
            case DONE -> 1.0;
        };
    }
}
