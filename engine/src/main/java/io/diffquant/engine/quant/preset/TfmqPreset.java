package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.temporal.FeatureCache;
import io.diffquant.engine.temporal.FscCalibrator;
import io.diffquant.engine.temporal.TemporalErrors;
import io.diffquant.engine.temporal.TemporalInfoBlock;
import io.diffquant.engine.temporal.TemporalReconstruction;
import io.diffquant.engine.temporal.Tiar;
import io.diffquant.engine.temporal.TfmqStage;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The TFMQ presets (Huang et al., "TFMQ-DM: Temporal Feature Maintenance Quantization for Diffusion Models", CVPR 2024,
 * and the TPAMI version "Temporal Feature Matters: A Framework for Diffusion Model Quantization", arXiv 2407.19547;
 * ModelTC/TFMQ-DM; ALGORITHMS.md §6), three defaults of one method whose switches are all options:
 * <ul>
 *   <li>{@code tfmq}: TIB-based maintenance: TIAR on the Temporal Information Block + FSC of the TIB activations
 *       ({@code fsc_scope} tib; {@code all} = every activation, the authors' code), BRECQ for the other layers;</li>
 *   <li>{@code tfmq-cache}: cache-based maintenance: the full-precision temporal features of every (t, y) quantized
 *       offline with their own parameters and looked up at inference (the TIB is not run);</li>
 *   <li>{@code tfmq-ds}: both, with disturbance-aware selection per feature and timestep.</li>
 * </ul>
 * Weights follow the base preset chosen by {@code weights} (q-diffusion, q-dit, fp4dit or rtn: their per-layer weight
 * specs and full-precision exceptions) at {@code w_bits}/{@code w_format}; activations are TFMQ's / Q-Diffusion's:
 * static per-tensor Lp-search ranges at {@code a_bits}/{@code a_format}, per timestep where FSC applies (recorded as
 * range {@code ema0.95}, mode {@code per_timestep}: FSC initialises each timestep with an MSE search, then EMA).
 */
public final class TfmqPreset extends BasePreset {
    public static final String WEIGHTS = "weights", TIAR = "tiar", TIAR_ITERS = "tiar_iters", TIAR_BATCH = "tiar_batch", TIAR_LR = "tiar_lr", TIAR_MODE = "tiar_mode",
            FSC = "fsc", FSC_SCOPE = "fsc_scope", FSC_SAMPLES = "fsc_samples", FSC_BATCH = "fsc_batch", CACHE = "cache",
            CACHE_GRANULARITY = "cache_granularity", CACHE_RANGE = "cache_range", SELECTION = "selection", SELECTION_METRIC = "selection_metric";
    /** TIAR's defaults (measured on dit-fmnist, docs/methods.md). */
    public static final int DEFAULT_TIAR_ITERS = 2000, DEFAULT_TIAR_BATCH = 128;
    public static final double DEFAULT_TIAR_LR = 1e-2;
    /**
     * TIAR's default schedule: blockwise (2000 steps per stage, W4A8 INT, reconstruction none; docs/methods.md): mean
     * temporal feature error 4.90e-5 (joint 5.70e-5) on dit-fmnist, 1.54e-4 (joint 2.08e-4) on unet-fmnist.
     */
    public static final Tiar.Mode DEFAULT_TIAR_MODE = Tiar.Mode.BLOCKWISE;

    private final String name;
    private final boolean tiar, fsc, cache, selection;

    private TfmqPreset(String name, boolean tiar, boolean fsc, boolean cache, boolean selection) {
        this.name = name;
        this.tiar = tiar;
        this.fsc = fsc;
        this.cache = cache;
        this.selection = selection;
    }

    /** TIB-based maintenance: TIAR + FSC (+ BRECQ for the rest). */
    public static TfmqPreset tfmq() { return new TfmqPreset("tfmq", true, true, false, false); }
    /** Cache-based maintenance. */
    public static TfmqPreset cache() { return new TfmqPreset("tfmq-cache", false, false, true, false); }
    /** Both with disturbance-aware selection. */
    public static TfmqPreset ds() { return new TfmqPreset("tfmq-ds", true, true, true, true); }

    @Override public String name() { return name; }

    @Override public String description() {
        String what = switch (name) {
            case "tfmq" -> "TIB-based temporal feature maintenance: TIAR (AdaRound / scale-aware FP AdaRound of the Temporal Information Block "
                    + "against the FP temporal features of every timestep and label) + FSC (per-timestep activation ranges of the TIB), BRECQ for the rest";
            case "tfmq-cache" -> "cache-based temporal feature maintenance: the FP temporal features of every (t, y) quantized offline with "
                    + "their own parameters and looked up at inference (the TIB is not run)";
            default -> "TIB-based (TIAR + FSC) and cache-based maintenance with disturbance-aware selection per feature and timestep";
        };
        return "TFMQ (Huang et al., TFMQ-DM, CVPR 2024 / TPAMI 2025): " + what + "; weights from the base preset ('weights'), static Lp "
                + "activation ranges; every switch (tiar, fsc, fsc_scope, cache, selection) is an option.";
    }

    @Override public List<OptionDef> options() {
        List<OptionDef> o = common(4, 8, "int", true);
        o.add(OptionDef.choice(WEIGHTS, "q-diffusion", List.of("q-diffusion", "q-dit", "fp4dit", "rtn"),
                "base preset whose per-layer weight specs (granularity, formats, full-precision exceptions) are used"));
        o.addAll(reconstructionOptions("brecq", QDiffusionPreset.DEFAULT_RECON_ITERS, 32));
        o.add(OptionDef.bool(TIAR, tiar, "TIAR: learned rounding of the Temporal Information Block against the FP temporal features (then excluded from the reconstruction of the rest)"));
        o.add(OptionDef.integer(TIAR_ITERS, DEFAULT_TIAR_ITERS, "TIAR Adam steps"));
        o.add(OptionDef.integer(TIAR_BATCH, DEFAULT_TIAR_BATCH, "(timestep, label) pairs per TIAR step"));
        o.add(OptionDef.real(TIAR_LR, DEFAULT_TIAR_LR, "TIAR learning rate of the rounding variables"));
        o.add(OptionDef.choice(TIAR_MODE, DEFAULT_TIAR_MODE.id(), List.of("blockwise", "joint", "auto"), "TIAR schedule: blockwise = the time "
                + "embedding first, then each modulation layer alone, tiar_iters steps each (one layer's memory; lower temporal feature error "
                + "on both shipped models), joint = every TIB rounding at once (the paper), auto = joint when it fits the heap, else blockwise"));
        o.add(OptionDef.bool(FSC, fsc, "FSC: one set of activation parameters per sampling timestep value"));
        o.add(OptionDef.choice(FSC_SCOPE, "tib", List.of("tib", "all"), "FSC scope: tib = TIB activations only (the paper), all = every activation quantizer (the authors' code)"));
        o.add(OptionDef.integer(FSC_SAMPLES, 8, "FSC scope all: recorded rows per timestep (0 = all)"));
        o.add(OptionDef.integer(FSC_BATCH, 4, "FSC scope all: rows per pass (the first pass of a timestep initialises by MSE search, later ones update an EMA)"));
        o.add(OptionDef.bool(CACHE, cache, "cache-based maintenance: quantize the FP temporal features offline and look them up at inference"));
        o.add(OptionDef.choice(CACHE_GRANULARITY, "chunk", List.of("tensor", "chunk"), "parameters of a cached feature: one set per shift/scale/gate chunk (the vectors the model uses), or one per concatenated feature vector"));
        o.add(OptionDef.string(CACHE_RANGE, "lp2x80s0.01", "range search on each cached feature (a range id: lp2x80s0.01 = MSE over 80 clipping candidates, lp, minmax, ...)"));
        o.add(OptionDef.bool(SELECTION, selection, "disturbance-aware selection: per feature and timestep the lower-error of TIB-based and cache-based (needs cache)"));
        o.add(OptionDef.choice(SELECTION_METRIC, "rel_l2", List.of("rel_l2", "mse", "cosine"), "temporal feature error the selection compares"));
        return o;
    }

    @Override public CalibrationSettings defaultCalibration() {
        return new CalibrationSettings("ddim", 50, 0, "linear", 1, 32, 16, 0, TimestepSubset.uniform(10, 32, 0), 32, 1 << 16);
    }

    /** The base preset's options for the shared names. */
    private static PresetOptions baseOptions(Preset base, PresetOptions o) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (OptionDef d : base.options()) {
            if (List.of(W_BITS, A_BITS, W_FORMAT, A_FORMAT, ATTENTION).contains(d.name()) && o.has(d.name())) m.put(d.name(), o.values().get(d.name()));
        }
        return PresetOptions.resolve(base, m);
    }

    @Override public Plan plan(DiffusionModel model, PresetOptions o) {
        checkSwitches(o);
        Preset base = Presets.byName(o.getString(WEIGHTS));
        Plan bp = base.plan(model, baseOptions(base, o));
        NumberFormat af = inputFormat(o);
        PointSpec d = new PointSpec(bp.defaults().weight(), input(af, Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC));
        List<QuantPoint> pts = QuantPoint.of(model);
        List<LayerOverride> ov = new ArrayList<>();
        for (LayerOverride b : bp.overrides()) {
            SpecPatch in = b.input().isOff() ? SpecPatch.OFF : SpecPatch.KEEP;    // keep full-precision exceptions, drop activation formats
            if (b.weight().isKeep() && in.isKeep()) continue;
            ov.add(new LayerOverride(b.pattern(), b.weight(), in, b.origin() + " (weights of " + base.name() + ")"));
        }
        RtnPreset.probes(ov, pts, o, af, Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC);
        if (o.getBoolean(FSC) && !(af instanceof BlockFormat)) {
            QuantPlan p = QuantPlan.resolve(model, d, ov);
            boolean all = "all".equals(o.getString(FSC_SCOPE));
            TemporalInfoBlock tib = TemporalInfoBlock.of(model);
            SpecPatch perT = new SpecPatch(null, null, null, RangeSpec.EMA, CalibrationMode.PER_TIMESTEP);
            for (QuantPoint q : p.points()) {
                TensorSpec in = p.spec(q.name()).input();
                if (!in.calibrated() || !(all || tib.contains(q.name()))) continue;
                ov.add(new LayerOverride(q.name(), SpecPatch.KEEP, perT, "preset: FSC per-timestep ranges (" + (all ? "all activations" : "TIB") + ")"));
            }
        }
        return new Plan(d, ov);
    }

    private static void checkSwitches(PresetOptions o) {
        if (o.getBoolean(SELECTION) && !o.getBoolean(CACHE)) throw new IllegalArgumentException("option 'selection': disturbance-aware "
                + "selection chooses between the TIB and the cache, so it needs 'cache' = true");
    }

    @Override public Reconstruction reconstruction(PresetOptions o) {
        return new TemporalReconstruction(o.getBoolean(TIAR), Reconstructions.byName(o.getString(RECONSTRUCTION)), o.getInt(TIAR_ITERS),
                o.getInt(TIAR_BATCH), o.getDouble(TIAR_LR), Tiar.Mode.of(o.getString(TIAR_MODE)));
    }

    @Override public PostCalibration postCalibration(DiffusionModel model, PresetOptions o) {
        checkSwitches(o);
        RangeSpec r;
        try {
            r = RangeSpec.parse(o.getString(CACHE_RANGE));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("option 'cache_range': " + e.getMessage(), e);
        }
        if (r.kind() == RangeSpec.Kind.EMA) throw new IllegalArgumentException("option 'cache_range': each cached feature is one vector; use minmax, percentile or lp");
        TemporalErrors.Metric metric = switch (o.getString(SELECTION_METRIC)) {
            case "mse" -> TemporalErrors.Metric.MSE;
            case "cosine" -> TemporalErrors.Metric.COSINE;
            default -> TemporalErrors.Metric.REL_L2;
        };
        return new TfmqStage(new TfmqStage.Settings(o.getBoolean(TIAR), o.getBoolean(FSC), o.getString(FSC_SCOPE), o.getInt(FSC_SAMPLES),
                o.getInt(FSC_BATCH), o.getBoolean(CACHE), inputFormat(o), FeatureCache.CacheGranularity.parse(o.getString(CACHE_GRANULARITY)),
                r.estimator(), o.getBoolean(SELECTION), metric, FscCalibrator.Settings.defaults()));
    }
}
