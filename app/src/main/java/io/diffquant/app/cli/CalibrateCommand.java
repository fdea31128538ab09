package io.diffquant.app.cli;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.quant.preset.OptionDef;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPlan;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** Calibrates a model with a method preset and writes the quantization config (and the calibration data cache). */
@Command(name = "calibrate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Calibrate a model with a quantization method and write its config JSON (docs/config-format.md).",
                "Methods: rtn, q-diffusion, q-dit, fp4dit, tfmq, tfmq-cache, tfmq-ds (docs/methods.md). Calibration data (x_t of the full-precision sampler)",
                "is recorded into --cache and reused by later runs with the same settings."},
        footer = {"", "Examples:",
                "  diffquant calibrate -m assets/dit-fmnist --method rtn --wbits 4 --abits 8 --out dit-w4a8.json",
                "  diffquant calibrate -m assets/dit-fmnist --method fp4dit --abits 6 --override 'blocks.0.*=w:fp8-e4m3'",
                "  diffquant calibrate -m assets/unet-fmnist --method q-dit --option group_size=64 --override 'final_layer=off'",
                "  diffquant calibrate -m assets/dit-fmnist --method tfmq-ds --option fsc_scope=all --option weights=fp4dit --wformat fp",
                "Override SPEC: 'off', or w:FIELDS and/or a:FIELDS separated by commas; FIELDS is 'off' or",
                "format/granularity/range/mode with trailing fields optional and '-' to keep (e.g. w:int4-sym/group64, a:-/-/lp)."})
final class CalibrateCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--method", defaultValue = "rtn", paramLabel = "PRESET", description = "rtn, q-diffusion, q-dit, fp4dit, tfmq, tfmq-cache or tfmq-ds (default: ${DEFAULT-VALUE})") String method;
    @Option(names = "--wbits", paramLabel = "N", description = "weight bits (the preset's w_bits)") Integer wbits;
    @Option(names = "--abits", paramLabel = "N", description = "activation bits (a_bits)") Integer abits;
    @Option(names = "--wformat", paramLabel = "F", description = "weight format: int, fp or a format id such as int4-sym, fp4-e2m1, mxfp4 (w_format)") String wformat;
    @Option(names = "--aformat", paramLabel = "F", description = "activation format: int, fp or a format id such as fp6-e3m2 (a_format)") String aformat;
    @Option(names = "--option", paramLabel = "KEY=VALUE", description = "any other preset option, repeatable (--list-options shows them)") List<String> options = new ArrayList<>();
    @Option(names = "--override", paramLabel = "GLOB=SPEC", description = "per-layer override by state_dict prefix glob, repeatable, applied in order after the preset's") List<String> overrides = new ArrayList<>();
    @Option(names = "--list-options", description = "list the methods and their options, then exit") boolean listOptions;
    @Option(names = "--sampler", paramLabel = "S", description = "calibration sampler: ddim or ddpm (default: the method's)") String sampler;
    @Option(names = "--steps", paramLabel = "N", description = "sampling steps of the calibration runs (per-timestep parameters need the steps used for sampling)") Integer steps;
    @Option(names = "--samples", paramLabel = "N", description = "images sampled for calibration") Integer samples;
    @Option(names = "--batch", paramLabel = "N", description = "images per calibration sampling run") Integer batch;
    @Option(names = "--seed", paramLabel = "N", description = "seed of the calibration sampling") Long seed;
    @Option(names = "--cfg", paramLabel = "S", description = "classifier-free guidance scale of the calibration runs (1 = none)") Double cfg;
    @Option(names = "--subset", paramLabel = "KIND", description = "timesteps used: uniform (Q-Diffusion), random (Q-DiT) or all") String subset;
    @Option(names = "--timesteps", paramLabel = "K", description = "number of calibration timesteps of the subset") Integer timesteps;
    @Option(names = "--per-timestep", paramLabel = "N", description = "samples per calibration timestep (0 = all)") Integer perTimestep;
    @Option(names = "--cache", paramLabel = "DIR", description = "calibration data cache (default: <out>.calib next to the config)") Path cache;
    @Option(names = "--name", paramLabel = "NAME", description = "model name written into the config (default: the folder name)") String name;
    @Option(names = {"-o", "--out"}, defaultValue = "quant-config.json", paramLabel = "FILE", description = "config file to write (default: ${DEFAULT-VALUE})") Path out;

    @Override public Integer call() throws Exception {
        if (listOptions) {
            for (Preset p : Presets.all()) {
                System.out.println(p.name() + ": " + p.description());
                for (OptionDef d : p.options()) System.out.println("    " + d.help());
            }
            return 0;
        }
        Preset preset = Presets.byName(method);
        Map<String, Object> opts = new LinkedHashMap<>();
        if (wbits != null) opts.put("w_bits", wbits);
        if (abits != null) opts.put("a_bits", abits);
        if (wformat != null) opts.put("w_format", wformat);
        if (aformat != null) opts.put("a_format", aformat);
        for (String o : options) {
            int eq = o.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--option expects KEY=VALUE, got '" + o + "'");
            opts.put(o.substring(0, eq).trim(), o.substring(eq + 1).trim());
        }
        List<LayerOverride> ov = new ArrayList<>();
        for (int i = 0; i < overrides.size(); i++) ov.add(LayerOverride.parse(overrides.get(i), "--override #" + (i + 1) + " '" + overrides.get(i) + "'"));
        CalibrationSettings d = preset.defaultCalibration();
        TimestepSubset s0 = d.subset();
        TimestepSubset sub = new TimestepSubset(subset != null ? TimestepSubset.Kind.parse(subset) : s0.kind(),
                timesteps != null ? timesteps : s0.kind() == TimestepSubset.Kind.ALL ? 10 : s0.timesteps(),
                perTimestep != null ? perTimestep : s0.samplesPerTimestep(), seed != null ? seed : s0.seed());
        CalibrationSettings cs = new CalibrationSettings(sampler != null ? sampler : d.sampler(), steps != null ? steps : d.steps(), d.eta(),
                d.schedule(), cfg != null ? cfg : d.cfgScale(), samples != null ? samples : d.samples(), batch != null ? batch : d.batch(),
                seed != null ? seed : d.seed(), sub, d.forwardBatch(), d.reservoir());

        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        String modelName = name != null ? name : loaded.folder().toAbsolutePath().normalize().getFileName().toString();
        ModelIdentity id = ModelIdentity.of(m, modelName);
        Path abs = out.toAbsolutePath();
        String stem = abs.getFileName().toString().replaceFirst("\\.json$", "");
        Path cacheDir = cache != null ? cache : abs.resolveSibling(stem + ".calib");

        long t0 = System.nanoTime();
        CalibrationJob job = CalibrationJob.start(new CalibrationJob.Request(m, id, preset.name(), opts, ov, cs, cacheDir, null));
        CalibrationJob.Phase last = null;
        while (job.hasNext()) {
            CalibrationJob.Progress p = job.next();
            if (last != null && p.phase() != last) System.err.println();
            last = p.phase();
            System.err.printf("\r[%s] %s   ", p.phase().name().toLowerCase(), p.message());
        }
        System.err.println();
        double secs = (System.nanoTime() - t0) / 1e9;
        QuantConfig c = job.result();
        QuantConfigCodec.write(c, out);
        QuantPlan plan = QuantConfigs.bind(c, m, false).plan();
        long quantized = plan.specs().values().stream().filter(x -> x.weight().enabled()).count();
        System.out.printf("%s %s calibrated in %.2f s: %d of %d weights quantized, %.2f average weight bits, %.2f MB (FP32 %.2f MB)%n",
                modelName, preset.name(), secs, quantized, plan.points().stream().filter(x -> x.hasWeight()).count(),
                plan.averageWeightBits(), plan.modelSizeBytes() / 1e6, plan.fpSizeBytes() / 1e6);
        System.out.println("config -> " + out + (job.data() != null ? "; calibration data in " + cacheDir : ""));
        return 0;
    }
}
