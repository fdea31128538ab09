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
 * {@code q-diffusion} (Li et al., "Q-Diffusion: Quantizing Diffusion Models", ICCV 2023; Xiuyu-Li/q-diffusion):
 * timestep-uniform calibration data (x_t at evenly spaced steps of the FP sampler x n samples), per-channel weights
 * rounded by BRECQ block reconstruction with AdaRound (the {@link Reconstruction} named by the {@code reconstruction}
 * option, default {@code brecq}, {@link #DEFAULT_RECON_ITERS} steps per unit), static per-tensor activation ranges
 * found by Lp-norm search (p = 2.4, 80 candidates of 1 %), attention matmul inputs and post-softmax probabilities
 * quantized, the split quantization of UNet skip concatenations, and the first and last layer's weights kept at 8 bits
 * (BRECQ's set_first_last_layer_to_8bit).
 */
public final class QDiffusionPreset extends BasePreset {
    /**
     * Reconstruction steps per block / layer by default: Q-Diffusion runs 20,000; 300 keeps the calibration of the shipped
     * dit-fmnist within the 10-minute budget on a 2-core CPU (ReconBenchmark: about 0.2 s per block step at batch 32).
     * Set {@code recon_iters} (0 = the papers' 20,000 / 2,500) for the full schedule.
     */
    public static final int DEFAULT_RECON_ITERS = 300;

    @Override public String name() { return "q-diffusion"; }

    @Override public String description() {
        return "Q-Diffusion (Li et al., ICCV 2023): timestep-uniform calibration data, per-channel weights with BRECQ + "
                + "AdaRound reconstruction (option 'reconstruction': brecq by default, " + DEFAULT_RECON_ITERS + " steps per block "
                + "or layer, recon_iters 0 = the paper's 20,000; 'none' = round to nearest), static per-tensor activations with Lp-search ranges (p = 2.4), attention quantized, "
                + "split quantization of UNet skip concatenations, first/last layer weights at 8 bits.";
    }

    @Override public List<OptionDef> options() {
        List<OptionDef> o = common(4, 8, "int", true);
        o.add(OptionDef.bool("first_last_8bit", true, "keep the first (x_embedder.proj / conv_in) and last (final_layer.linear / conv_out) layer's weights at 8 bits"));
        o.addAll(reconstructionOptions("brecq", DEFAULT_RECON_ITERS, 32));
        return o;
    }

    @Override public CalibrationSettings defaultCalibration() {
        return new CalibrationSettings("ddim", 50, 0, "linear", 1, 32, 16, 0, TimestepSubset.uniform(10, 32, 0), 32, 1 << 16);
    }

    @Override public Plan plan(DiffusionModel model, PresetOptions o) {
        NumberFormat wf = weightFormat(o), af = inputFormat(o);
        PointSpec d = new PointSpec(weight(wf, Granularity.CHANNEL, RangeSpec.MINMAX),
                input(af, Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC));
        List<QuantPoint> pts = QuantPoint.of(model);
        List<LayerOverride> ov = new ArrayList<>();
        RtnPreset.probes(ov, pts, o, af, Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC);
        if (o.getBoolean("first_last_8bit") && wf.codeBits() < 8) {
            NumberFormat w8 = Formats.resolve(o.getString(W_FORMAT).equals("fp") ? "fp" : "int", 8, W_FORMAT);
            SpecPatch p = new SpecPatch(null, w8, null, null, null);
            for (String l : isDiT(model) ? List.of("x_embedder.proj", "final_layer.linear") : List.of("conv_in", "conv_out"))
                add(ov, pts, l, p, SpecPatch.KEEP, "first/last layer weights at 8 bits");
        }
        return new Plan(d, ov);
    }
}
