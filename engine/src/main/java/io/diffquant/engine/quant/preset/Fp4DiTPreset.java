package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.format.FpFormat;
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
 * {@code fp4dit} (Chen et al., "FP4DiT: Towards Effective Floating Point Quantization for Diffusion Transformers",
 * arXiv 2503.15465; cccrrrccc/FP4DiT), ALGORITHMS.md §8: FP weights (4 bits: E2M1) with maxval = absmax per group of
 * 128 input channels (or per channel), the MLP's first linear (DiT mlp.fc1, before GELU) in E3M0, online per-token FP
 * activations (each token row's absmax is its maxval; 8 bits E4M3, 6 bits E2M3, any split via a_format, unsigned after
 * softmax) and the paper's full-precision exceptions: positional embedding (a buffer, never quantized), the time and
 * label embedders (DiT t_embedder / y_embedder; UNet time_embedding / class_embedding) and the final layer's norm and
 * output projection (DiT final_layer.linear and final_layer.adaLN_modulation.1; UNet conv_out). Weights are rounded
 * by block reconstruction with scale-aware FP AdaRound (the {@code reconstruction} option, default {@code brecq};
 * {@code recon_iters} 0 = the paper's 2,500 steps per block).
 */
public final class Fp4DiTPreset extends BasePreset {
    @Override public String name() { return "fp4dit"; }

    @Override public String description() {
        return "FP4DiT (Chen et al., arXiv 2503.15465): E2M1 weights with per-group-128 absmax maxval, E3M0 for the MLP's "
                + "first linear, online per-token FP activations (E4M3 / E2M3 by bits), embedders and final layer in FP; "
                + "block reconstruction with scale-aware FP AdaRound (option 'reconstruction', default brecq; 'none' = round to nearest).";
    }

    @Override public List<OptionDef> options() {
        List<OptionDef> o = common(4, 8, "fp", true);
        o.add(OptionDef.integer("group_size", 128, "weight group size (0 = per output channel)"));
        o.add(OptionDef.string("fc1_format", "fp4-e3m0", "format of the MLP's first linear (DiT mlp.fc1) when the weights are 4-bit FP; 'same' keeps the weight format"));
        o.addAll(reconstructionOptions("brecq", QDiffusionPreset.DEFAULT_RECON_ITERS, 32));
        return o;
    }

    @Override public CalibrationSettings defaultCalibration() {
        return new CalibrationSettings("ddim", 50, 0, "linear", 1, 32, 16, 0, TimestepSubset.uniform(10, 32, 0), 32, 1 << 16);
    }

    @Override public Plan plan(DiffusionModel model, PresetOptions o) {
        NumberFormat wf = weightFormat(o), af = inputFormat(o);
        int g = o.getInt("group_size");
        if (g < 0) throw new IllegalArgumentException("option 'group_size': expected >= 0 (0 = per channel), got " + g);
        Granularity wg = g == 0 ? Granularity.CHANNEL : Granularity.group(g);
        PointSpec d = new PointSpec(weight(wf, wg, RangeSpec.MINMAX),
                input(af, Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC));
        List<QuantPoint> pts = QuantPoint.of(model);
        List<LayerOverride> ov = new ArrayList<>();
        if (isDiT(model)) {
            fullPrecision(ov, pts, "t_embedder", "time embedder in FP");
            fullPrecision(ov, pts, "y_embedder", "label embedder in FP");
            fullPrecision(ov, pts, "final_layer", "final layer (norm modulation and output projection) in FP");
            String fc1 = o.getString("fc1_format");
            if (!"same".equals(fc1) && wf instanceof FpFormat fp && fp.codeBits() == 4) {
                NumberFormat f = Formats.resolve(fc1, 4, "fc1_format");
                add(ov, pts, "blocks.*.mlp.fc1", new SpecPatch(null, f, null, null, null), SpecPatch.KEEP, "E3M0 before GELU (FP4DiT)");
            }
        } else {
            fullPrecision(ov, pts, "time_embedding", "time embedding in FP");
            fullPrecision(ov, pts, "class_embedding", "class embedding in FP");
            fullPrecision(ov, pts, "conv_out", "output projection in FP");
        }
        RtnPreset.probes(ov, pts, o, af, Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC);
        return new Plan(d, ov);
    }
}
