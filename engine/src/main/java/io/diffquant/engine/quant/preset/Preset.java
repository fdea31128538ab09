package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;

import java.util.List;

/**
 * A quantization method a user picks by name (docs/methods.md): the specs it gives every layer, the options that
 * parameterise it, its default calibration data, and the optional refinement steps (granularity search,
 * reconstruction) that {@link CalibrationJob} runs.
 */
public interface Preset {
    /** The name used in configs and on the command line ({@code rtn}, {@code q-diffusion}, {@code q-dit}, {@code fp4dit}). */
    String name();

    /** What the preset does and which paper it follows (one paragraph). */
    String description();

    /** The options this preset accepts (anything else is an error). */
    List<OptionDef> options();

    /** The calibration data this method uses by default (sampler, images, timestep subset). */
    CalibrationSettings defaultCalibration();

    /** The default specs and the method's own overrides (full-precision exceptions, per-layer formats) for a model. */
    Plan plan(DiffusionModel model, PresetOptions options);

    /** Q-DiT's evolutionary group-size search, when the options ask for it; null otherwise. */
    default GranularitySearchSpec search(DiffusionModel model, PresetOptions options) { return null; }

    /** The reconstruction that refines the round-to-nearest weights (Reconstruction.NONE when none). */
    default Reconstruction reconstruction(PresetOptions options) { return Reconstruction.NONE; }

    /** The stage run after the activation ranges (TFMQ: FSC, cache, selection), or null (the default). */
    default PostCalibration postCalibration(DiffusionModel model, PresetOptions options) { return null; }

    /** A preset's layer specs: defaults, then its overrides (user overrides are applied after these). */
    record Plan(PointSpec defaults, List<LayerOverride> overrides) {
        public Plan {
            overrides = List.copyOf(overrides);
        }
    }
}
