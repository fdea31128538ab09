package io.diffquant.app.cli;

import io.diffquant.app.plot.HeadlessCharts;
import io.diffquant.engine.analysis.AnalysisExport;
import io.diffquant.engine.analysis.AnalysisSession;
import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.analysis.Histograms;
import io.diffquant.engine.analysis.LayerSensitivity;
import io.diffquant.engine.analysis.PerturbationSensitivity;
import io.diffquant.engine.analysis.TemporalFeatureError;
import io.diffquant.engine.analysis.TemporalMismatch;
import io.diffquant.engine.analysis.TrajectoryDeviation;
import io.diffquant.engine.analysis.Variant;
import io.diffquant.engine.metrics.FmnistClassifier;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * The analyses of io.diffquant.engine.analysis from the command line: JSON + CSV (AnalysisExport) and PNG plots
 * (HeadlessCharts) into an output folder.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Analyse how quantization configs disturb a model (TFMQ-DM's analyses, ALGORITHMS.md §6): writes JSON, CSV and PNG plots.",
                "  temporal-error     per-timestep error of every temporal feature (relative L2, MSE, cosine) for each --config",
                "  mismatch           distance of each quantized temporal feature to the FP features of every timestep, mismatch rate",
                "  trajectory         ||x_t^q - x_t^FP|| after every sampling step from the same noise, for each --config",
                "  perturbation       FID-FMNIST and MSE vs FP when noise lambda*std is added to temporal vs non-temporal features",
                "  layer-sensitivity  one layer at a time quantized with --spec: output error per layer and timestep",
                "  histogram          weight and per-timestep input-activation histograms with the grid of --spec"},
        footer = {"", "Examples:",
                "  diffquant analyze -m assets/dit-fmnist --what temporal-error,mismatch,trajectory -c w4a8=rtn.json -c tfmq=tfmq.json -o out/",
                "  diffquant analyze -m assets/dit-fmnist --what perturbation --lambdas 0.01,0.03,0.1,0.3 --images 200 -o out/",
                "  diffquant analyze -m assets/dit-fmnist --what layer-sensitivity --spec w:int4/channel -o out/",
                "  diffquant analyze -m assets/dit-fmnist --what histogram --layers 'blocks.0.*' --spec w:fp4-e2m1/channel,a:int8/tensor -o out/"})
final class AnalyzeCommand implements Callable<Integer> {
    static final List<String> ANALYSES = AnalysisRuns.ANALYSES;

    @Mixin ModelOption model;
    @Option(names = {"-w", "--what"}, required = true, split = ",", paramLabel = "ANALYSIS",
            description = "temporal-error, mismatch, trajectory, perturbation, layer-sensitivity, histogram or all (comma-separated or repeated)")
    List<String> what = new ArrayList<>();
    @Option(names = {"-c", "--config"}, paramLabel = "NAME=FILE", description = "quantization config to compare, repeatable; NAME defaults to the file name")
    List<String> configs = new ArrayList<>();
    @Option(names = {"-o", "--out"}, required = true, paramLabel = "DIR", description = "output folder (created if missing)") Path out;
    @Option(names = "--force", description = "apply configs even if they were calibrated for other weights") boolean force;
    @Option(names = "--steps", defaultValue = "50", description = "sampling steps: the timesteps of every analysis (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--sampler", defaultValue = "ddim", description = "ddim or ddpm (default: ${DEFAULT-VALUE})") String sampler;
    @Option(names = "--eta", defaultValue = "0", description = "DDIM eta (default: ${DEFAULT-VALUE})") double eta;
    @Option(names = "--schedule", defaultValue = "linear", description = "noise schedule (default: ${DEFAULT-VALUE})") String schedule;
    @Option(names = "--cfg", defaultValue = "1", description = "classifier-free guidance scale, 1 = none (default: ${DEFAULT-VALUE})") double cfg;
    @Option(names = "--seed", defaultValue = "0", description = "seed of the sampling noise (default: ${DEFAULT-VALUE})") long seed;
    @Option(names = "--samples", defaultValue = "8", description = "samples of trajectory, layer-sensitivity and histogram (default: ${DEFAULT-VALUE})") int samples;
    @Option(names = "--batch", defaultValue = "50", description = "samples per denoiser call (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--lambdas", split = ",", paramLabel = "L", defaultValue = "0.01,0.03,0.1,0.3,1",
            description = "perturbation magnitudes (default: ${DEFAULT-VALUE})") List<Double> lambdas;
    @Option(names = "--images", defaultValue = "200", description = "images per perturbation setting (default: ${DEFAULT-VALUE})") int images;
    @Option(names = "--classifier", paramLabel = "DIR", description = "FID-FMNIST feature network (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path classifier;
    @Option(names = "--no-fid", description = "perturbation: MSE only, no FID-FMNIST") boolean noFid;
    @Option(names = "--spec", paramLabel = "SPEC", defaultValue = "w:int4-asym/channel/minmax",
            description = "layer-sensitivity: how each layer is quantized; histogram: whose grid is overlaid. w:FIELDS and/or a:FIELDS "
                    + "(format/granularity/range/mode), as calibrate --override (default: ${DEFAULT-VALUE})") String spec;
    @Option(names = "--layers", paramLabel = "GLOB", description = "layer-sensitivity and histogram: layers (state_dict prefix globs), repeatable; default all")
    List<String> layers = new ArrayList<>();
    @Option(names = "--bins", defaultValue = "64", description = "histogram bins (default: ${DEFAULT-VALUE})") int bins;
    @Option(names = "--max-plots", defaultValue = "24", description = "most per-layer histogram PNGs (default: ${DEFAULT-VALUE})") int maxPlots;
    @Option(names = "--no-plots", description = "JSON and CSV only") boolean noPlots;

    @Override public Integer call() throws Exception {
        Set<String> todo = analyses(what);
        if (model.folder == null || !Files.isDirectory(model.folder)) throw new IllegalArgumentException("--model " + model.folder
                + ": no such model folder");
        List<String[]> named = parseConfigs(configs);
        boolean needConfigs = todo.contains("temporal-error") || todo.contains("mismatch") || todo.contains("trajectory");
        if (needConfigs && named.isEmpty()) throw new IllegalArgumentException("--what " + String.join(",", todo)
                + ": temporal-error, mismatch and trajectory compare configs with full precision; give at least one --config NAME=FILE");
        PointSpec pointSpec = parseSpec(spec);
        AnalysisSettings settings = new AnalysisSettings(sampler, steps, eta, schedule, cfg, seed, samples, batch);
        if (todo.contains("perturbation") && (lambdas == null || lambdas.isEmpty())) throw new IllegalArgumentException("--lambdas: give at least one value");

        long t0 = System.nanoTime();
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        List<Variant> variants = new ArrayList<>();
        for (String[] nf : named) {
            Path file = Path.of(nf[1]);
            if (!Files.isRegularFile(file)) throw new IllegalArgumentException("--config " + nf[0] + "=" + nf[1] + ": no such file");
            variants.add(Variant.of(nf[0], QuantConfigCodec.read(file), force));
        }
        Files.createDirectories(out);
        AnalysisSession session = new AnalysisSession(m, settings);
        System.err.printf(Locale.ROOT, "loaded %s (%s) in %.1f s; %s%n", loaded.folder(), m.architecture(), secs(t0), settings.describe());
        List<Path> written = new ArrayList<>();

        if (todo.contains("temporal-error")) {
            AnalysisRuns.Run<TemporalFeatureError.Result> r = AnalysisRuns.temporalError(session, variants);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.temporalError(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotTemporalError(r.result()));
        }
        if (todo.contains("mismatch")) {
            AnalysisRuns.Run<List<TemporalMismatch.Result>> r = AnalysisRuns.mismatch(session, variants);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.mismatch(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotMismatch(r.result()));
        }
        if (todo.contains("trajectory")) {
            AnalysisRuns.Run<TrajectoryDeviation.Result> r = AnalysisRuns.trajectory(session, variants);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.trajectory(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotTrajectory(r.result()));
        }
        if (todo.contains("perturbation")) {
            FmnistMetrics metrics = null;
            if (!noFid) {
                if (m.inChannels() != 1 || m.sampleSize() != FmnistClassifier.IMAGE_SIZE) throw new IllegalArgumentException(loaded.folder()
                        + ": FID-FMNIST measures [N, 1, 28, 28] images, this " + m.architecture() + " makes " + m.inChannels() + "x"
                        + m.sampleSize() + "x" + m.sampleSize() + "; use --no-fid");
                metrics = classifier != null ? FmnistMetrics.load(classifier) : FmnistMetrics.loadDefault();
            }
            double[] ls = lambdas.stream().mapToDouble(Double::doubleValue).toArray();
            AnalysisRuns.Run<PerturbationSensitivity.Result> r = AnalysisRuns.perturbation(session, ls, images, metrics);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.perturbation(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotPerturbation(r.result()));
        }
        if (todo.contains("layer-sensitivity")) {
            AnalysisRuns.Run<LayerSensitivity.Result> r = AnalysisRuns.layerSensitivity(session, pointSpec, layers, 1);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.layerSensitivity(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotLayerSensitivity(r.result()));
        }
        if (todo.contains("histogram")) {
            AnalysisRuns.Run<List<Histograms.Histogram>> r = AnalysisRuns.histograms(session, layers, bins, pointSpec);
            System.err.println(r.summary());
            written.addAll(AnalysisExport.histograms(r.result(), settings).write(out));
            if (!noPlots) written.addAll(plotHistograms(r.result()));
        }
        System.out.printf(Locale.ROOT, "%d files -> %s (%.1f s)%n", written.size(), out, secs(t0));
        for (Path p : written) System.out.println("  " + out.relativize(p));
        return 0;
    }

    // ------------------------------------------------------------------ options

    static Set<String> analyses(List<String> what) { return AnalysisRuns.parse(what, "--what"); }

    /** NAME=FILE or FILE (name = file name without .json); names must be unique. */
    static List<String[]> parseConfigs(List<String> configs) {
        List<String[]> out = new ArrayList<>();
        Set<String> names = new LinkedHashSet<>();
        for (String c : configs) {
            int eq = c.indexOf('=');
            String name, file;
            if (eq > 0 && c.substring(0, eq).indexOf('/') < 0) {
                name = c.substring(0, eq).trim();
                file = c.substring(eq + 1).trim();
            } else {
                file = c.trim();
                name = Path.of(file).getFileName().toString().replaceFirst("\\.json$", "");
            }
            if (name.isEmpty() || file.isEmpty()) throw new IllegalArgumentException("--config '" + c + "': expected NAME=FILE or FILE");
            if (!names.add(name)) throw new IllegalArgumentException("--config '" + c + "': the name '" + name + "' is used twice");
            out.add(new String[] {name, file});
        }
        return out;
    }

    /** w:FIELDS,a:FIELDS (calibrate --override syntax without the glob) as a point spec; fields left out stay off. */
    static PointSpec parseSpec(String spec) {
        LayerOverride o;
        try {
            o = LayerOverride.parse("*=" + spec, "--spec '" + spec + "'");
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
        TensorSpec w, a;
        try {
            w = o.weight().apply(TensorSpec.OFF, TensorSpec.OFF);
            w.validate(TensorSpec.Role.WEIGHT);
            a = o.input().apply(TensorSpec.OFF, TensorSpec.OFF);
            a.validate(TensorSpec.Role.INPUT);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--spec '" + spec + "': " + e.getMessage(), e);
        }
        PointSpec p = new PointSpec(w, a);
        if (!p.enabled()) throw new IllegalArgumentException("--spec '" + spec + "': quantizes nothing (give w:FORMAT/GRANULARITY and/or a:...)");
        return p;
    }

    private static double secs(long t0) { return (System.nanoTime() - t0) / 1e9; }

    // ------------------------------------------------------------------ plots

    private static String[] labels(int[] ts) {
        String[] s = new String[ts.length];
        for (int i = 0; i < ts.length; i++) s[i] = Integer.toString(ts[i]);
        return s;
    }

    private static double[] doubles(int[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }

    /** A file-name-safe version of a name. */
    static String safe(String s) { return s.replaceAll("[^A-Za-z0-9._-]", "_"); }

    private List<Path> plotTemporalError(TemporalFeatureError.Result r) throws java.io.IOException {
        List<Path> files = new ArrayList<>();
        double[] t = doubles(r.timesteps());
        List<HeadlessCharts.Series> series = new ArrayList<>();
        for (TemporalFeatureError.ConfigError c : r.configs()) series.add(new HeadlessCharts.Series(c.config(), t, c.meanRelativeL2PerTimestep()));
        Path p = out.resolve("temporal-error.png");
        HeadlessCharts.lineChart(p, "Temporal feature error (mean over " + r.features().size() + " features)", "timestep t",
                "||ê - e||² / ||e||²", true, series, "per timestep, mean over labels; configs with zero error are not drawn on the log axis");
        files.add(p);
        String[] feats = r.features().toArray(new String[0]);
        for (TemporalFeatureError.ConfigError c : r.configs()) {
            Path h = out.resolve("temporal-error-" + safe(c.config()) + ".png");
            HeadlessCharts.heatmap(h, "Temporal feature error: " + c.config(), "timestep t", labels(r.timesteps()), "feature", feats,
                    c.relativeL2(), true, "relative L2", String.format(Locale.ROOT, "mean %.4g", c.meanRelativeL2()));
            files.add(h);
        }
        return files;
    }

    private List<Path> plotMismatch(List<TemporalMismatch.Result> rs) throws java.io.IOException {
        List<Path> files = new ArrayList<>();
        for (TemporalMismatch.Result r : rs) {
            Path h = out.resolve("mismatch-" + safe(r.config()) + ".png");
            String[] ts = labels(r.timesteps());
            HeadlessCharts.heatmap(h, "Temporal information mismatch: " + r.config(), "FP timestep t'", ts, "quantized timestep t", ts,
                    r.all().distance(), true, "||ê(t) - e(t')||", String.format(Locale.ROOT, "all features; mismatch rate %.3f", r.all().rate()));
            files.add(h);
        }
        return files;
    }

    private List<Path> plotTrajectory(TrajectoryDeviation.Result r) throws java.io.IOException {
        double[] steps = new double[r.timesteps().length];
        for (int k = 0; k < steps.length; k++) steps[k] = k + 1;
        List<HeadlessCharts.Series> series = new ArrayList<>();
        for (TrajectoryDeviation.Series c : r.configs()) series.add(new HeadlessCharts.Series(c.config(), steps, c.l2()));
        Path p = out.resolve("trajectory.png");
        HeadlessCharts.lineChart(p, "Denoising trajectory deviation", "sampling step (t = " + r.timesteps()[0] + " .. " + r.timesteps()[steps.length - 1] + ")",
                "||x_t^q - x_t^FP||", true, series, "mean over " + r.samples() + " samples, same initial and step noise");
        return List.of(p);
    }

    private List<Path> plotPerturbation(PerturbationSensitivity.Result r) throws java.io.IOException {
        List<Path> files = new ArrayList<>();
        double[] l = r.lambdas();
        Path mse = out.resolve("perturbation-mse.png");
        HeadlessCharts.lineChart(mse, "Perturbation sensitivity: error vs FP images", "λ (noise = λ · std)", "MSE vs FP", true, true,
                List.of(new HeadlessCharts.Series("temporal features", l, r.temporal().mse()),
                        new HeadlessCharts.Series("non-temporal (block outputs)", l, r.nonTemporal().mse())), r.images() + " images, same seeds");
        files.add(mse);
        if (!r.metric().isEmpty()) {
            Path fid = out.resolve("perturbation-fid.png");
            double[] fp = new double[l.length];
            java.util.Arrays.fill(fp, r.fpFid());
            HeadlessCharts.lineChart(fid, "Perturbation sensitivity: " + r.metric(), "λ (noise = λ · std)", r.metric(), true, true,
                    List.of(new HeadlessCharts.Series("temporal features", l, r.temporal().fid()),
                            new HeadlessCharts.Series("non-temporal (block outputs)", l, r.nonTemporal().fid()),
                            new HeadlessCharts.Series("full precision", l, fp)),
                    String.format(Locale.ROOT, "%d images; real-data floor %.3g; %s uses the product's Fashion-MNIST classifier, not Inception",
                            r.images(), r.fidFloor(), r.metric()));
            files.add(fid);
        }
        return files;
    }

    private List<Path> plotLayerSensitivity(LayerSensitivity.Result r) throws java.io.IOException {
        List<Path> files = new ArrayList<>();
        String[] names = r.layers().toArray(new String[0]);
        Path bar = out.resolve("layer-sensitivity.png");
        HeadlessCharts.barChart(bar, "Per-layer sensitivity", "layer", "mean ||out_q - out_FP||² / ||out_FP||²", true, names, r.meanError(),
                r.probes().getFirst().describe() + ", one layer at a time, mean over timesteps");
        files.add(bar);
        Path heat = out.resolve("layer-sensitivity-heatmap.png");
        HeadlessCharts.heatmap(heat, "Per-layer sensitivity per timestep", "timestep t", labels(r.timesteps()), "layer", names,
                r.relativeError(), true, "relative output error", r.probes().getFirst().describe());
        files.add(heat);
        return files;
    }

    private List<Path> plotHistograms(List<Histograms.Histogram> hs) throws java.io.IOException {
        List<Path> files = new ArrayList<>();
        int weights = 0, inputs = 0;
        java.util.Map<String, List<Histograms.Histogram>> perT = new java.util.LinkedHashMap<>();
        for (Histograms.Histogram h : hs) {
            if (h.tensor().equals("weight")) {
                if (weights++ >= maxPlots) continue;
                Path p = out.resolve("histogram-weight-" + safe(h.layer()) + ".png");
                HeadlessCharts.histogram(p, "Weights of " + h.layer(), "value", h.lo(), h.hi(), h.counts(), h.grid(),
                        h.format().isEmpty() ? h.elements() + " values" : h.format() + ", " + h.gridNote(), true);
                files.add(p);
            } else if (Float.isNaN(h.timestep())) {
                if (inputs++ >= maxPlots) continue;
                Path p = out.resolve("histogram-input-" + safe(h.layer()) + ".png");
                HeadlessCharts.histogram(p, "Input activations of " + h.layer() + " (all timesteps)", "value", h.lo(), h.hi(), h.counts(),
                        h.grid(), h.format().isEmpty() ? h.elements() + " values" : h.format() + ", " + h.gridNote(), true);
                files.add(p);
                List<Histograms.Histogram> ts = perT.getOrDefault(h.layer(), List.of());
                if (!ts.isEmpty()) {
                    double[][] z = new double[ts.size()][];
                    String[] rows = new String[ts.size()];
                    for (int i = 0; i < ts.size(); i++) {
                        long[] c = ts.get(i).counts();
                        z[i] = new double[c.length];
                        for (int b = 0; b < c.length; b++) z[i][b] = c[b];
                        rows[i] = "t=" + (int) ts.get(i).timestep();
                    }
                    String[] cols = new String[h.bins()];
                    for (int b = 0; b < cols.length; b++) cols[b] = String.format(Locale.ROOT, "%.3g", h.edge(b) + h.binWidth() / 2);
                    Path hm = out.resolve("histogram-input-" + safe(h.layer()) + "-per-timestep.png");
                    HeadlessCharts.heatmap(hm, "Input activations of " + h.layer() + " per timestep", "value (bin centre)", cols, "timestep",
                            rows, z, true, "count", h.elements() / Math.max(1, ts.size()) + " values per timestep");
                    files.add(hm);
                }
            } else {
                perT.computeIfAbsent(h.layer(), k -> new ArrayList<>()).add(h);
            }
        }
        return files;
    }
}
