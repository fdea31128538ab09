package io.diffquant.app.cli;

import io.diffquant.engine.diffusion.GuidanceMode;
import io.diffquant.engine.diffusion.SampleBatches;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.preset.Presets;
import io.diffquant.engine.quant.results.ResultConfig;
import io.diffquant.engine.quant.results.ResultRow;
import io.diffquant.engine.quant.results.ResultsRun;
import io.diffquant.engine.quant.results.ResultsTable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** Measures every method preset at several bit settings and formats on a Fashion-MNIST model and writes the results table. */
@Command(name = "results", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Quantize a 28x28x1 Fashion-MNIST model with every method preset (from the preset registry) at each bit setting",
                "in INT and FP, sample the same N images (same seeds and labels) as the FP32 model, and measure FID-FMNIST (with the",
                "real-data floor), class accuracy (class-conditional models) and PSNR/SSIM against the FP32 images. Writes the",
                "model's section of docs/results.md (other sections are kept) and the table as JSON and CSV. Calibrated configs are",
                "kept in --work DIR/configs; calibration data in --work DIR/calib."},
        footer = {"", "Examples:",
                "  diffquant results -m assets/dit-fmnist                                  # the full table",
                "  diffquant results -m assets/unet-fmnist --count 100 --presets rtn,q-dit --bits W4A8 --no-doc   # a quick look",
                "  diffquant results -m assets/dit-fmnist --option recon_iters=100 --reuse-configs"})
final class ResultsCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--name", paramLabel = "NAME", description = "model name: the section of the document and the configs' model name (default: the folder name)") String name;
    @Option(names = "--presets", split = ",", paramLabel = "P", description = "presets to run (default: every registered preset: ${COMPLETION-CANDIDATES})") List<String> presets;
    @Option(names = "--bits", split = ",", defaultValue = "W8A8,W4A8,W4A6", paramLabel = "WxAy", description = "bit settings (default: ${DEFAULT-VALUE})") List<String> bits;
    @Option(names = "--formats", split = ",", defaultValue = "int,fp", paramLabel = "F", description = "int and/or fp, for weights and activations alike (default: ${DEFAULT-VALUE})") List<String> formats;
    @Option(names = "--count", defaultValue = "1000", paramLabel = "N", description = "images per row (default: ${DEFAULT-VALUE})") int count;
    @Option(names = "--steps", defaultValue = "50", paramLabel = "N", description = "DDIM steps (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--cfg", defaultValue = "1.5", paramLabel = "S", description = "classifier-free guidance scale of class-conditional models (default: ${DEFAULT-VALUE}; unconditional models sample without)") double cfg;
    @Option(names = "--seed", defaultValue = "0", description = "sampling seed, the same for every row (default: ${DEFAULT-VALUE})") long seed;
    @Option(names = "--batch", defaultValue = "50", paramLabel = "N", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--option", paramLabel = "KEY=VALUE", description = "preset option given to every preset that has it, repeatable (e.g. recon_iters=100, search=true)") List<String> options = new ArrayList<>();
    @Option(names = "--work", paramLabel = "DIR", description = "calibration data and configs (default: results-work/<name>)") Path work;
    @Option(names = "--reuse-configs", description = "reuse configs in --work DIR/configs calibrated for the same model and options instead of calibrating again") boolean reuse;
    @Option(names = "--doc", paramLabel = "FILE", description = "Markdown document whose section for this model is replaced (default: <project>/docs/results.md)") Path doc;
    @Option(names = "--no-doc", description = "do not write the Markdown document") boolean noDoc;
    @Option(names = "--out-json", paramLabel = "FILE", description = "table as JSON (default: <work>/results.json; written after every row)") Path outJson;
    @Option(names = "--out-csv", paramLabel = "FILE", description = "table as CSV (default: <work>/results.csv; written after every row)") Path outCsv;
    @Option(names = "--classifier", paramLabel = "DIR", description = "feature network folder (default: <project>/" + FmnistMetrics.ASSET_DIR + ")") Path classifier;
    @Option(names = "--list", description = "print the rows that would run and exit") boolean list;

    /** The project root: -Ddiffquant.root (set by bin/diffquant), else the working directory. */
    static Path projectRoot() {
        String r = System.getProperty(FmnistMetrics.ROOT_PROPERTY);
        return r != null && !r.isBlank() ? Path.of(r) : Path.of("").toAbsolutePath();
    }

    @Override public Integer call() throws Exception {
        List<String> ps = presets == null || presets.isEmpty() ? Presets.names() : presets;
        List<ResultConfig> configs;
        try {
            configs = ResultConfig.grid(ps, bits, formats);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--presets/--bits/--formats: " + e.getMessage(), e);
        }
        if (list) {
            for (ResultConfig c : configs) System.out.println(c.label());
            System.out.println(configs.size() + " configurations (presets: " + String.join(", ", ps) + ")");
            return 0;
        }
        if (count < 2) throw new IllegalArgumentException("--count must be >= 2 (FID-FMNIST needs a covariance), got " + count);
        Map<String, String> opts = new LinkedHashMap<>();
        for (String o : options) {
            int eq = o.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--option expects KEY=VALUE, got '" + o + "'");
            opts.put(o.substring(0, eq).trim(), o.substring(eq + 1).trim());
        }
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        String modelName = name != null ? name : loaded.folder().toAbsolutePath().normalize().getFileName().toString();
        boolean conditional = m.numClasses() > 0;
        SampleBatches.Settings s = new SampleBatches.Settings("ddim", steps, 0, "linear", conditional ? cfg : 1.0, GuidanceMode.ALL_CHANNELS, seed, batch);
        FmnistMetrics metrics = classifier != null ? FmnistMetrics.load(classifier) : FmnistMetrics.loadDefault();
        Path workDir = work != null ? work : Path.of("results-work").resolve(modelName);
        Files.createDirectories(workDir);
        Path json = outJson != null ? outJson : workDir.resolve("results.json");
        Path csv = outCsv != null ? outCsv : workDir.resolve("results.csv");
        Path docFile = noDoc ? null : doc != null ? doc : projectRoot().resolve("docs").resolve("results.md");
        ModelIdentity id = ModelIdentity.of(m, modelName);

        ResultsRun run = ResultsRun.start(new ResultsRun.Request(m, id, configs, count, s, opts, workDir, metrics, null, reuse));
        String started = ZonedDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm z", Locale.ROOT));
        System.err.printf("%s: %d configurations x %d images (+ FP32), %s%n", modelName, configs.size(), count, s.describe(conditional));
        ResultsRun.Phase last = null;
        while (run.hasNext()) {
            ResultsRun.Progress p = run.next();
            if (run.rowFinished()) {
                System.err.print("\r\033[K");
                System.out.printf("[%d/%d, %s] %s%n", p.row(), p.rows() - 1, minutes(run.elapsedSeconds()), p.message());
                ResultsTable t = run.table(modelName, info(loaded, m, id, s, opts, started, run, metrics));
                t.writeJson(json);
                t.writeCsv(csv);
            } else {
                if (last != null && p.phase() != last) System.err.print("\r\033[K");
                System.err.printf("\r[%d/%d] %s   ", p.row(), p.rows() - 1, p.message());
            }
            last = p.phase();
        }
        ResultsTable t = run.table(modelName, info(loaded, m, id, s, opts, started, run, metrics));
        t.writeJson(json);
        t.writeCsv(csv);
        if (docFile != null) t.writeSection(docFile);
        long failed = t.rows().stream().filter(r -> !r.ok()).count();
        System.out.printf("%d rows (%d failed) in %s -> %s, %s%s%n", t.rows().size(), failed, minutes(run.elapsedSeconds()), json, csv,
                docFile == null ? "" : ", section '" + modelName + "' of " + docFile);
        for (ResultRow r : t.rows()) if (!r.ok()) System.out.println("  failed: " + r.label() + ": " + r.error());
        return 0;
    }

    private static String minutes(double s) {
        return s < 120 ? String.format(Locale.ROOT, "%.0f s", s) : String.format(Locale.ROOT, "%.1f min", s / 60);
    }

    private Map<String, String> info(ModelFolder.Loaded loaded, DiffusionModel m, ModelIdentity id, SampleBatches.Settings s, Map<String, String> opts,
                                     String started, ResultsRun run, FmnistMetrics metrics) {
        Map<String, String> info = new LinkedHashMap<>();
        info.put("model", String.format(Locale.ROOT, "`%s` (%s, %.2f M parameters, weights sha256 %s)", loaded.folder(), m.architecture(),
                m.parameterCount() / 1e6, id.weightsSha256() == null ? "?" : id.weightsSha256().substring(0, 12)));
        info.put("images", count + " per row, " + s.describe(m.numClasses() > 0) + (m.numClasses() > 0 ? ", labels cycling 0..9" : "")
                + "; every row from the same noise (seed and image index) and labels");
        info.put("metrics", "FID-FMNIST with the product's Fashion-MNIST classifier (" + FmnistMetrics.ASSET_DIR + "; not Inception), its "
                + "real-data floor in the header (two halves of the test set, 5,000 vs 5,000); with " + count + " images FID-FMNIST is biased "
                + "upwards, compare rows with each other. PSNR/SSIM against the FP32 images of the same seeds; images clamped to [-1, 1]");
        info.put("calibration", "each preset's defaults (docs/methods.md)" + (opts.isEmpty() ? "" : "; options " + opts)
                + "; weight bits = average bits over all Linear/Conv2d weights, scales included, layers kept in FP counting 32");
        info.put("run", String.format(Locale.ROOT, "`diffquant results` started %s, %s for %d rows on %d cores", started, minutes(run.elapsedSeconds()),
                run.rows().size(), Runtime.getRuntime().availableProcessors()));
        return info;
    }
}
