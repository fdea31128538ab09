package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.search.GroupSizeSearch;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code q-dit} (Chen et al., "Q-DiT: Accurate Post-Training Quantization for Diffusion Transformers", arXiv
 * 2406.17343; Juanerx/Q-DiT), ALGORITHMS.md §7: the Linear/Conv2d layers of the transformer (DiT: blocks.*; UNet:
 * down/mid/up blocks) quantized with per-group asymmetric min-max weights (group size g along the input channels) and
 * dynamic per-group input activations (per-row min/max of g values, computed at every forward: no calibration); the
 * embedders and the final layer stay in full precision, attention matmul inputs only with {@code quantize_attention}.
 * With {@code search = true} the evolutionary group-size search chooses one g per layer from {32, 64, 128, 192, 288}
 * (divisors of the layer width) under mean(g) >= budget; its objective is pluggable (default {@code output-mse}).
 */
public final class QDiTPreset extends BasePreset {
    public static final int[] CHOICES = {32, 64, 128, 192, 288};

    @Override public String name() { return "q-dit"; }

    @Override public String description() {
        return "Q-DiT (Chen et al., arXiv 2406.17343): per-group asymmetric weights (group size g) and dynamic per-group "
                + "activations in the transformer blocks, embedders and final layer in full precision; optional "
                + "evolutionary group-size search (choices 32/64/128/192/288, mean(g) >= budget) with a pluggable objective.";
    }

    @Override public List<OptionDef> options() {
        List<OptionDef> o = common(4, 8, "int", false);
        o.add(OptionDef.integer("group_size", 128, "group size g (input channels per weight group and per activation group)"));
        o.add(OptionDef.choice("w_range", "minmax", List.of("minmax", "lp-qdit"), "weight range: min-max or Lp search (100 steps of 0.1 %)"));
        o.add(OptionDef.bool("search", false, "run the evolutionary group-size search"));
        o.add(OptionDef.real("budget", 128.0, "search constraint: mean group size >= budget"));
        o.add(OptionDef.integer("generations", 10, "search generations"));
        o.add(OptionDef.integer("population", 50, "search population (top 10 kept, 25 mutations + 25 crossovers per generation)"));
        o.add(OptionDef.integer("search_seed", 0, "search random seed"));
        o.add(OptionDef.choice("search_objective", "output-mse", List.of("output-mse", "fid-fmnist"), "search objective: output-mse (MSE of the "
                + "model output vs FP on the calibration batches) or fid-fmnist (FID-FMNIST of search_images images sampled by the quantized model, "
                + "the paper's FID objective on Fashion-MNIST models); a caller may supply its own"));
        o.add(OptionDef.integer("search_images", 256, "fid-fmnist: images sampled per evaluated genome"));
        o.add(OptionDef.integer("search_steps", 20, "fid-fmnist: DDIM steps of those images"));
        o.add(OptionDef.real("search_cfg", 1.5, "fid-fmnist: classifier-free guidance scale (class-conditional models)"));
        return o;
    }

    @Override public CalibrationSettings defaultCalibration() {
        return new CalibrationSettings("ddim", 50, 0, "linear", 1, 8, 8, 0, TimestepSubset.random(5, 8, 0), 16, 1 << 16);
    }

    /** Whether a layer is one Q-DiT quantizes. */
    static boolean inScope(DiffusionModel m, String layer) {
        if (isDiT(m)) return layer.startsWith("blocks.");
        return layer.startsWith("down_blocks.") || layer.startsWith("mid_block.") || layer.startsWith("up_blocks.");
    }

    @Override public Plan plan(DiffusionModel model, PresetOptions o) {
        int g = o.getInt("group_size");
        if (g < 1) throw new IllegalArgumentException("option 'group_size': expected >= 1, got " + g);
        NumberFormat wf = weightFormat(o), af = inputFormat(o);
        RangeSpec wr = RangeSpec.parse(o.getString("w_range"));
        Granularity gr = Granularity.group(g);
        PointSpec d = new PointSpec(weight(wf, gr, wr), input(af, gr, RangeSpec.MINMAX, CalibrationMode.DYNAMIC));
        List<QuantPoint> pts = QuantPoint.of(model);
        List<LayerOverride> ov = new ArrayList<>();
        if (isDiT(model)) {
            for (String p : List.of("x_embedder", "t_embedder", "final_layer")) fullPrecision(ov, pts, p, "embedders and final layer in FP (Q-DiT quantizes the blocks)");
        } else {
            for (String p : List.of("conv_in", "time_embedding", "class_embedding", "conv_out")) fullPrecision(ov, pts, p, "stem, time embedding and output conv in FP");
        }
        if (!o.getBoolean(ATTENTION)) {
            for (String p : PROBE_PATTERNS) add(ov, pts, p, SpecPatch.KEEP, SpecPatch.OFF, "attention matmul inputs not quantized (quantize_bmm_input off)");
        } else if (!(af instanceof io.diffquant.engine.quant.format.BlockFormat)) {
            // probes get per-token dynamic ranges (their channel dim is the head dim, not the layer width)
            for (String p : PROBE_PATTERNS) add(ov, pts, p, SpecPatch.KEEP, new SpecPatch(null, null, Granularity.TOKEN, null, null),
                    "attention matmul inputs per token");
        }
        return new Plan(d, ov);
    }

    @Override public GranularitySearchSpec search(DiffusionModel model, PresetOptions o) {
        if (!o.getBoolean("search")) return null;
        List<GroupSizeSearch.Gene> genes = new ArrayList<>();
        QuantPlan plan = QuantPlan.resolve(model, plan(model, o).defaults(), plan(model, o).overrides());
        for (QuantPoint p : plan.points()) {
            if (!p.hasWeight() || !plan.spec(p.name()).weight().enabled()) continue;
            genes.add(new GroupSizeSearch.Gene(p.name(), choices(p.inChannels())));
        }
        if (genes.isEmpty()) throw new IllegalArgumentException("q-dit search: no quantized layer to search over");
        GroupSizeSearch.Settings s = new GroupSizeSearch.Settings(o.getInt("population"), 10, 25, 25, o.getInt("generations"), 0.1,
                o.getDouble("budget"), o.getInt("search_seed"));
        return new GranularitySearchSpec(genes, s, o.getString("search_objective"));
    }

    /** The choices that divide a layer width (the width itself when none does). */
    public static int[] choices(int width) {
        List<Integer> c = new ArrayList<>();
        for (int v : CHOICES) if (v <= width && width % v == 0) c.add(v);
        if (c.isEmpty()) c.add(width);
        return c.stream().mapToInt(Integer::intValue).toArray();
    }
}
