package io.diffquant.app.cli;

import io.diffquant.engine.card.ModelCardJob;
import io.diffquant.engine.card.ReproductionSample;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.tensor.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** Writes the model card folder of a trained Fashion-MNIST model ({@link ModelCardJob}, issue 3's shipped models). */
@Command(name = "card", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Write the model card of a trained 28x28x1 Fashion-MNIST model folder (DiT or UNet2DModel from 'diffquant train'):",
                "samples it with DDIM, measures FID-FMNIST / sFID-FMNIST (with the real-data floor and real images at the same N),",
                "IS-FMNIST and class accuracy (class-conditional models, after a CFG sweep), draws a 10x10 grid, records a small",
                "fixed-seed reproduction sample for ShippedModelsTest and times the 64-image sampling benchmark.",
                "--out receives config.json, the weights, training.json, MODEL_CARD.md, metrics.json, samples.png and",
                "reproduction.safetensors; it is replaced atomically (a temporary folder renamed into place)."})
final class CardCommand implements Callable<Integer> {
    @Spec CommandSpec spec;
    @Option(names = {"-m", "--model"}, paramLabel = "DIR", description = "trained model folder (config.json, weights, training.json)") Path model;
    @Option(names = "--out", required = true, paramLabel = "DIR", description = "card folder to write, e.g. assets/dit-fmnist") Path out;
    @Option(names = "--name", description = "model name in the card (default: the model folder's name, or its parent's when it is called 'model')") String name;
    @Option(names = "--count", defaultValue = "1000", description = "evaluation images (default: ${DEFAULT-VALUE}; >= 100 for a full 10x10 grid)") int count;
    @Option(names = "--steps", defaultValue = "50", description = "DDIM steps of evaluation, sweep and grid (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--seed", defaultValue = "0", description = "noise seed of evaluation and sweep (default: ${DEFAULT-VALUE})") long seed;
    @Option(names = "--batch", defaultValue = "100", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--cfg", description = "CFG scale to use (class-conditional models); skips the sweep") Double cfg;
    @Option(names = "--cfg-sweep", split = ",", defaultValue = "1.5,3,4",
            description = "CFG scales to sweep when --cfg is not given (default: ${DEFAULT-VALUE}); rule: lowest FID-FMNIST among those with class accuracy >= 85 %%")
    List<Double> cfgSweep;
    @Option(names = "--sweep-count", defaultValue = "200", description = "images per sweep scale (default: ${DEFAULT-VALUE})") int sweepCount;
    @Option(names = "--repro-count", defaultValue = "" + ReproductionSample.DEFAULT_COUNT, description = "reproduction sample images (default: ${DEFAULT-VALUE})") int reproCount;
    @Option(names = "--repro-steps", defaultValue = "" + ReproductionSample.DEFAULT_STEPS, description = "reproduction sample DDIM steps (default: ${DEFAULT-VALUE})") int reproSteps;
    @Option(names = "--repro-seed", defaultValue = "" + ReproductionSample.DEFAULT_SEED, description = "reproduction sample seed (default: ${DEFAULT-VALUE})") long reproSeed;
    @Option(names = "--bench-count", defaultValue = "64", description = "benchmark images, one batch; 0 = no benchmark (default: ${DEFAULT-VALUE})") int benchCount;
    @Option(names = "--bench-steps", defaultValue = "50", description = "benchmark DDIM steps (default: ${DEFAULT-VALUE})") int benchSteps;
    @Option(names = "--data", paramLabel = "DIR", defaultValue = "/usr/share/datasets/fashion-mnist",
            description = "Fashion-MNIST files for the same-N real-data reference (default: ${DEFAULT-VALUE}; skipped when absent)") Path data;
    @Option(names = "--no-real-data", description = "skip the same-N real-data reference") boolean noRealData;
    @Option(names = "--classifier", paramLabel = "DIR", description = "feature network folder (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path classifier;
    @Option(names = "--training-note", paramLabel = "TEXT", description = "added to the card's training wall-time line (e.g. how the machine was shared)") String trainingNote;
    @Option(names = "--no-copy-model", description = "do not copy config.json, the weights and training.json into --out") boolean noCopy;
    @Option(names = "--threads", description = "engine worker threads (default: all cores)") Integer threads;
    @Option(names = "--rerender", description = "only re-render MODEL_CARD.md of --out from its metrics.json (with --training-note if given); no sampling") boolean rerender;
    @Option(names = "--bench-only", description = "only (re-)time the sampling benchmark of the card folder --out (--bench-count images, --bench-steps "
            + "steps, after an untimed warm-up) and update its metrics.json and MODEL_CARD.md") boolean benchOnly;

    @Override public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        if (rerender) {
            ModelCardJob.rerender(out, trainingNote);
            System.out.println("re-rendered " + out.resolve(ModelCardJob.CARD));
            return 0;
        }
        if (threads != null) {
            if (threads < 1) throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
            Parallel.setThreads(threads);
        }
        long t0 = System.nanoTime();
        int[] width = {0};
        ModelCardJob.Listener listener = new ModelCardJob.Listener() {
            @Override public void message(String line) {
                if (width[0] > 0) err.print("\r" + " ".repeat(width[0]) + "\r");
                width[0] = 0;
                err.printf(Locale.ROOT, "[%5.0f s] %s%n", (System.nanoTime() - t0) * 1e-9, line);
                err.flush();
            }

            @Override public void progress(String line) {
                String l = String.format(Locale.ROOT, "[%5.0f s] %s", (System.nanoTime() - t0) * 1e-9, line);
                err.print("\r" + l + (l.length() < width[0] ? " ".repeat(width[0] - l.length()) : ""));
                width[0] = Math.max(width[0], l.length());
                err.flush();
            }
        };
        if (benchOnly) {
            if (benchCount < 1) throw new IllegalArgumentException("--bench-only needs --bench-count >= 1, got " + benchCount);
            var bm = ModelCardJob.benchmarkOnly(out, benchCount, benchSteps, listener);
            System.out.printf(Locale.ROOT, "benchmark of %s: %d images, %d steps in %.1f s (bar < 60 s: %s); %s and %s updated%n", out,
                    benchCount, benchSteps, bm.get("wall_seconds").asDouble(), bm.get("meets_bar").asBoolean() ? "met" : "NOT met",
                    ModelCardJob.METRICS, ModelCardJob.CARD);
            return 0;
        }
        if (model == null) throw new IllegalArgumentException("--model DIR is required (the trained model folder)");
        if (sweepCount < 2 && cfg == null) throw new IllegalArgumentException("--sweep-count must be >= 2, got " + sweepCount);
        Path clsFolder = classifier != null ? classifier : FmnistMetrics.defaultFolder();
        FmnistMetrics metrics = FmnistMetrics.load(clsFolder);
        List<Double> scales = cfg != null ? List.of(cfg) : cfgSweep;
        ModelCardJob.Settings s = new ModelCardJob.Settings(name != null ? name : ModelCardJob.defaultName(model), count, steps, seed, batch,
                scales, sweepCount, new ReproductionSample(reproCount, reproSteps, reproSeed, 1.0), benchCount, benchSteps,
                noRealData ? null : data, trainingNote, !noCopy);
        ModelCardJob.Result r = ModelCardJob.run(model, out, metrics, clsFolder, s, listener);
        err.println("timings (wall / CPU seconds):");
        double wall = 0, cpu = 0;
        for (ModelCardJob.Timing t : r.timings()) {
            err.printf(Locale.ROOT, "  %-20s %8.1f s %8.1f s   (load average %.1f at start)%n", t.phase(), t.wallSeconds(), t.cpuSeconds(), t.loadAverage());
            wall += t.wallSeconds();
            cpu += t.cpuSeconds();
        }
        err.printf(Locale.ROOT, "  %-20s %8.1f s %8.1f s%n", "total", wall, cpu);
        var ev = r.record().get("evaluation");
        System.out.printf(Locale.ROOT, "card written: %s (FID-FMNIST %.4f, floor %.4f%s)%n", out, ev.get("FID-FMNIST").asDouble(),
                r.record().get("feature_network").get("fid_floor").asDouble(),
                ev.has("class accuracy") ? String.format(Locale.ROOT, ", class accuracy %.2f %%, CFG %s", ev.get("class accuracy").asDouble(),
                        io.diffquant.engine.metrics.MetricsTable.formatShort(r.chosenCfg())) : "");
        return 0;
    }
}
