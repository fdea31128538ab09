package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.spec.QuantPlan;

import java.util.Iterator;

/**
 * The hook point for rounding by reconstruction (ALGORITHMS.md §5: AdaRound, scale-aware FP AdaRound, BRECQ block
 * reconstruction). A {@link CalibrationJob} calls it after the round-to-nearest weight parameters are computed and
 * before the activation ranges are calibrated: it receives the plan, the RTN parameters and the calibration data, and
 * returns refined parameters (learned rounding goes into {@link io.diffquant.engine.quant.WeightParams#codes()};
 * it may also return input parameters, which activation calibration then leaves alone). Progress is pulled: the job
 * calls {@link Run#next()} until {@link Run#hasNext()} is false, then {@link Run#result()}.
 *
 * <p>Implementations register by name in {@link Reconstructions}; presets select one with their
 * {@code reconstruction} option.
 */
public interface Reconstruction {
    /** The name a preset option selects ({@code none}, later {@code brecq}, {@code adaround}, {@code fp-adaround}). */
    String name();

    /** Starts the reconstruction; nothing runs until {@link Run#next()}. */
    Run start(Context context);

    /** What a reconstruction works with. */
    record Context(DiffusionModel model, QuantPlan plan, CalibratedParams initial, CalibrationSet data, TimestepSubset subset,
                   int forwardBatch, PresetOptions options) {}

    /** A running reconstruction: each next() does a bounded piece of work and describes it. */
    interface Run extends Iterator<String> {
        /** The refined parameters (valid once hasNext() is false). */
        CalibratedParams result();
        /** Stops before the next piece of work. */
        void cancel();
    }

    /** No reconstruction: round to nearest. */
    Reconstruction NONE = new Reconstruction() {
        @Override public String name() { return "none"; }
        @Override public Run start(Context c) {
            return new Run() {
                @Override public boolean hasNext() { return false; }
                @Override public String next() { throw new java.util.NoSuchElementException(); }
                @Override public CalibratedParams result() { return c.initial(); }
                @Override public void cancel() { }
            };
        }
    };

    /** Whether this reconstruction needs calibration data (NONE does not). */
    default boolean needsData() { return this != NONE; }
}
