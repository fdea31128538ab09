package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.config.TemporalSection;
import io.diffquant.engine.quant.spec.QuantPlan;

import java.util.Iterator;
import java.util.Set;

/**
 * A calibration stage a preset adds after the activation ranges (TFMQ-DM's finite set calibration, cache-based
 * maintenance and disturbance-aware selection, {@code io.diffquant.engine.temporal.TfmqStage}): {@link CalibrationJob}
 * pulls it step by step and writes its result into the config. The inputs it claims
 * ({@link #calibratesInputs}) are left alone by the job's activation calibrator.
 */
public interface PostCalibration {
    String name();

    /** The quant points whose input parameters this stage calibrates (the activation phase skips them). */
    Set<String> calibratesInputs(QuantPlan plan);

    /** Starts the stage; nothing runs until {@link Run#next()}. */
    Run start(Context context);

    /**
     * What the stage works with.
     * @param params every calibrated parameter so far (weights after reconstruction, static activation ranges)
     */
    record Context(DiffusionModel model, QuantPlan plan, CalibratedParams params, CalibrationSet data, CalibrationSettings settings,
                   PresetOptions options) {}

    /** A running stage: each next() does a bounded piece of work and describes it. */
    interface Run extends Iterator<String> {
        /** Valid once hasNext() is false. */
        Result result();
        void cancel();
    }

    /** The parameters (the context's plus the stage's) and the config's temporal section (or null). */
    record Result(CalibratedParams params, TemporalSection temporal) {}
}
