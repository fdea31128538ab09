package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code rtn}: round to nearest, the baseline of every PTQ paper (Q-Diffusion Table 1 "Linear Quant"). Weights:
 * per-output-channel min-max ranges, INT-b asymmetric (or FP); activations: one static per-tensor min-max range per
 * input, calibrated on timestep-uniform FP sampler data; attention probes included. Every Linear/Conv2d is quantized.
 */
public final class RtnPreset extends BasePreset {
    @Override public String name() { return "rtn"; }

    @Override public String description() {
        return "Round to nearest: per-channel min-max weights, static per-tensor min-max activations calibrated on "
                + "timestep-uniform FP sampler data; every Linear/Conv2d and the attention probes quantized (the baseline "
                + "of Q-Diffusion, Li et al. ICCV 2023, Table 1).";
    }

    @Override public List<OptionDef> options() {
        List<OptionDef> o = common(8, 8, "int", true);
        o.add(OptionDef.string("w_granularity", "channel", "weight granularity: tensor, channel, group<g>"));
        o.add(OptionDef.string("a_granularity", "tensor", "activation granularity of the static ranges: tensor or channel"));
        return o;
    }

    @Override public CalibrationSettings defaultCalibration() {
        return new CalibrationSettings("ddim", 20, 0, "linear", 1, 8, 8, 0, TimestepSubset.uniform(5, 8, 0), 16, 1 << 16);
    }

    @Override public Plan plan(DiffusionModel model, PresetOptions o) {
        NumberFormat wf = weightFormat(o), af = inputFormat(o);
        Granularity wg = granularity(o, "w_granularity"), ag = granularity(o, "a_granularity");
        PointSpec d = new PointSpec(weight(wf, wg, RangeSpec.MINMAX),
                input(af, ag, RangeSpec.MINMAX, CalibrationMode.STATIC));
        List<QuantPoint> pts = QuantPoint.of(model);
        List<LayerOverride> ov = new ArrayList<>();
        probes(ov, pts, o, af, ag, RangeSpec.MINMAX, CalibrationMode.STATIC);
        return new Plan(d, ov);
    }

    static Granularity granularity(PresetOptions o, String name) {
        try {
            return Granularity.parse(o.getString(name));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("option '" + name + "': " + e.getMessage(), e);
        }
    }

    /** Attention probes: off unless quantize_attention; FP formats use their unsigned variant after softmax. */
    static void probes(List<LayerOverride> ov, List<QuantPoint> pts, PresetOptions o, NumberFormat af, Granularity g, RangeSpec r, CalibrationMode m) {
        if (!o.getBoolean(ATTENTION)) {
            for (String p : PROBE_PATTERNS) add(ov, pts, p, SpecPatch.KEEP, SpecPatch.OFF, "attention probes not quantized");
        } else if (Formats.isFp(af)) {
            add(ov, pts, "*.softmax", SpecPatch.KEEP, new SpecPatch(null, Formats.forSoftmax(af), g, r, m),
                    "unsigned FP after softmax (FP4DiT)");
        }
    }
}
