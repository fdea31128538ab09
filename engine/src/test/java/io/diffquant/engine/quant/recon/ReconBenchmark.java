package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.CalibrationSet;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.preset.Preset;
import io.diffquant.engine.quant.preset.PresetOptions;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.preset.Reconstruction;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Timing and quality harness (not a unit test) of BRECQ / AdaRound reconstruction on a DiT of the shipped model's
 * size: records the preset's calibration data (q-diffusion: DDIM 50 steps, 32 images, 10 uniform timesteps x 32
 * rows), runs the reconstruction with a given iteration count and prints per unit the cache time, the time per
 * optimisation step and the output MSE with round-to-nearest and with learned rounding, plus an estimate of the full
 * q-diffusion calibration time for other iteration counts. Run from the engine module's test classpath:
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp engine/target/test-classes:engine/target/classes:... \
 *   io.diffquant.engine.quant.recon.ReconBenchmark [model: brief | shipped | &lt;model folder&gt;] [iterations 200] [batch 32]
 *   [preset q-diffusion] [w_bits 4] [a_bits 8] [threads] [units glob,... | all] [act_quant true|false]
 * </pre>
 * "brief": input 28, patch 2, hidden 256, depth 6, 4 heads, 10 classes (random weights); "shipped": the dit-fmnist
 * training config (input 28, patch 4, hidden 192, depth 6, 4 heads; random weights unless a folder is given).
 * {@code ReconBenchmark job [model] [preset q-diffusion]} instead times the whole calibration job with the preset's
 * defaults (record, weights, reconstruction, activation ranges) per phase.
 */
public final class ReconBenchmark {
    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("job")) {
            job(args.length > 1 ? args[1] : "shipped", args.length > 2 ? args[2] : "q-diffusion");
            return;
        }
        String which = args.length > 0 ? args[0] : "brief";
        int iters = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        int batch = args.length > 2 ? Integer.parseInt(args[2]) : 32;
        String presetName = args.length > 3 ? args[3] : "q-diffusion";
        int wBits = args.length > 4 ? Integer.parseInt(args[4]) : 4, aBits = args.length > 5 ? Integer.parseInt(args[5]) : 8;
        if (args.length > 6) Parallel.setThreads(Integer.parseInt(args[6]));
        List<String> units = args.length > 7 && !args[7].equals("all") ? List.of(args[7].split(",")) : List.of();
        boolean actQuant = args.length <= 8 || Boolean.parseBoolean(args[8]);

        DiffusionModel model;
        String name;
        if (which.equals("brief") || which.equals("shipped")) {
            DiTConfig cfg = which.equals("brief") ? new DiTConfig(28, 2, 1, 256, 6, 4, 4.0, 0.1, 10, true)
                    : new DiTConfig(28, 4, 1, 192, 6, 4, 4.0, 0.1, 10, true);
            model = randomDiT(cfg, 1);
            name = "dit-" + which + "-random";
        } else {
            model = ModelFolder.load(Path.of(which)).model();
            name = Path.of(which).getFileName().toString();
        }
        Preset preset = Presets.byName(presetName);
        Map<String, Object> opts = new LinkedHashMap<>();
        opts.put("w_bits", wBits);
        opts.put("a_bits", aBits);
        PresetOptions po = PresetOptions.resolve(preset, opts);
        Preset.Plan pp = preset.plan(model, po);
        QuantPlan plan = QuantPlan.resolve(model, pp.defaults(), pp.overrides());
        CalibrationSettings cs = preset.defaultCalibration();
        Path dir = Files.createTempDirectory("recon-bench-");
        long t0 = System.nanoTime();
        CalibrationSet data = CalibrationSet.record(model, ModelIdentity.of(model, name), cs, dir.resolve("calib"));
        double recordS = (System.nanoTime() - t0) / 1e9;
        long t1 = System.nanoTime();
        CalibratedParams rtn = WeightCalibrator.calibrate(model, plan);
        double weightsS = (System.nanoTime() - t1) / 1e9;
        ReconSettings s = ReconSettings.from(po).withIterations(iters).withBatchSize(batch).withUnits(units).withActQuant(actQuant);
        Reconstruction.Context ctx = new Reconstruction.Context(model, plan, rtn, data, cs.subset(), cs.forwardBatch(), po);
        System.out.printf(Locale.ROOT, "model %s (%d parameters), preset %s W%dA%d (act quant in reconstruction: %s), %d threads, %s, %d rows%n",
                name, model.parameterCount(), presetName, wBits, aBits, actQuant, Parallel.threads(), cs.subset().describe(), data.select(cs.subset()).stream().mapToInt(x -> x.rows().length).sum());
        System.out.printf(Locale.ROOT, "record calibration data: %.1f s, RTN weight ranges: %.2f s%n", recordS, weightsS);
        long t2 = System.nanoTime();
        ReconRun run = BrecqReconstruction.BRECQ.start(ctx, s);
        double actS = 0;
        long ta = System.nanoTime();
        while (run.hasNext()) {
            ReconRun.Phase before = run.phase();
            run.next();
            if (before == ReconRun.Phase.ACTIVATIONS && run.phase() != ReconRun.Phase.ACTIVATIONS) actS = (System.nanoTime() - ta) / 1e9;
        }
        double totalS = (System.nanoTime() - t2) / 1e9;
        System.out.printf(Locale.ROOT, "provisional activation ranges: %.1f s%n", actS);
        System.out.printf(Locale.ROOT, "%-32s %5s %6s %8s %8s %9s %12s %12s %7s%n", "unit", "rows", "iters", "cache s", "opt s", "ms/step",
                "RTN MSE", "learned MSE", "ratio");
        double cache = 0, perStep = 0;
        for (ReconRun.UnitReport r : run.reports()) {
            double ms = r.optimizeSeconds() / r.iterations() * 1000;
            cache += r.cacheSeconds();
            perStep += ms / 1000;
            System.out.printf(Locale.ROOT, "%-32s %5d %6d %8.2f %8.2f %9.1f %12.5g %12.5g %7.3f%n", r.unit(), r.rows(), r.iterations(),
                    r.cacheSeconds(), r.optimizeSeconds(), ms, r.rtnMse(), r.reconMse(), r.reconMse() / r.rtnMse());
        }
        System.out.printf(Locale.ROOT, "reconstruction total %.1f s (%d units); per step over all units %.2f s; cache %.1f s%n", totalS,
                run.reports().size(), perStep, cache);
        for (int k : new int[] {100, 200, 300, 500, 1000, 2500, 20000}) {
            double est = recordS + weightsS + actS * 2 + cache + perStep * k;   // act ranges twice: provisional + final
            System.out.printf(Locale.ROOT, "estimate q-diffusion calibration at %5d steps/unit: %8.0f s (%.1f min)%n", k, est, est / 60);
        }
        try (var w = Files.walk(dir)) {
            w.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    static DiffusionModel model(String which) throws java.io.IOException {
        if (which.equals("brief")) return randomDiT(new DiTConfig(28, 2, 1, 256, 6, 4, 4.0, 0.1, 10, true), 1);
        if (which.equals("shipped")) return randomDiT(new DiTConfig(28, 4, 1, 192, 6, 4, 4.0, 0.1, 10, true), 1);
        return ModelFolder.load(Path.of(which)).model();
    }

    /** Times CalibrationJob.run with the preset's default options and calibration settings, per phase. */
    static void job(String which, String preset) throws Exception {
        DiffusionModel model = model(which);
        Path dir = Files.createTempDirectory("recon-job-");
        var job = io.diffquant.engine.quant.preset.CalibrationJob.start(new io.diffquant.engine.quant.preset.CalibrationJob.Request(model,
                ModelIdentity.of(model, which), preset, null, null, null, dir, null));
        Map<io.diffquant.engine.quant.preset.CalibrationJob.Phase, Double> seconds = new LinkedHashMap<>();
        long start = System.nanoTime(), t = start;
        String lastRecon = "";
        while (job.hasNext()) {
            var p = job.next();
            long now = System.nanoTime();
            seconds.merge(p.phase(), (now - t) / 1e9, Double::sum);
            t = now;
            if (p.phase() == io.diffquant.engine.quant.preset.CalibrationJob.Phase.RECONSTRUCT && p.message().contains(" done:")) {
                lastRecon = p.message();
                System.out.println(lastRecon);
            }
        }
        job.result();
        System.out.printf(Locale.ROOT, "%s calibration of %s (%d threads): total %.1f s (%.1f min)%n", preset, which, Parallel.threads(),
                (System.nanoTime() - start) / 1e9, (System.nanoTime() - start) / 60e9);
        seconds.forEach((k, v) -> System.out.printf(Locale.ROOT, "  %-12s %8.1f s%n", k, v));
        try (var w = Files.walk(dir)) {
            w.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    static DiT randomDiT(DiTConfig cfg, long seed) {
        DiT m = new DiT(cfg);
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            Tensor t = e.getValue().copy();
            if (!e.getKey().equals("pos_embed")) {
                int[] sh = t.shape();
                double std = sh.length >= 2 ? 1.0 / Math.sqrt(t.size() / sh[0]) : 0.02;
                for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * std);
            }
            sd.put(e.getKey(), t);
        }
        m.loadWeights(sd, "random(" + seed + ")");
        return m;
    }
}
