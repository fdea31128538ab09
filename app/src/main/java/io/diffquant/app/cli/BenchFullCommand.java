package io.diffquant.app.cli;

import io.diffquant.engine.analysis.AnalyticFlops;
import io.diffquant.engine.analysis.FlopCounter;
import io.diffquant.engine.diffusion.LatentDiffusionPipeline;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampler;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.model.CheckpointImport;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.MemoryBudget;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.RandomCheckpoints;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.model.vae.AutoencoderKLConfig;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.TimestepSubset;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.quant.preset.CalibrationJob;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.NativeThreads;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.temporal.TemporalInfoBlock;
import io.diffquant.app.cli.FullSizeSuite.Stage;
import io.diffquant.engine.analysis.AnalysisSettings;
import io.diffquant.engine.quant.preset.Presets;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * Full-size measurement on random weights with the real shapes and names (issue 8): DiT-XL/2-256 (facebookresearch/DiT
 * names), the SD VAE (stabilityai/sd-vae-ft-ema shapes) and the DDPM CIFAR-10 UNet (google/ddpm-cifar10-32, and the
 * CompVis/DDIM names through the importer) are written to a temporary folder, loaded memory-mapped, sampled, their TIB
 * found, calibrated and exported; one markdown table of times, peak heap and GFLOP/s.
 */
@Command(name = "bench-full", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Full-size checkpoints on random weights with the real shapes: DiT-XL/2-256 + SD VAE + DDPM CIFAR-10 UNet.",
                "Writes them (safetensors + config.json) to a temporary folder, loads them memory-mapped, samples 1 image at 256 px",
                "with DiT-XL/2 (DDIM, decoded by the VAE) and 1 CIFAR-10 image, finds the TIB, calibrates and exports each denoiser,",
                "checks the out-of-memory message in a JVM with a small heap, and prints a markdown table."},
        footer = {"", "Examples:", "  diffquant bench-full                      (the measurement: 20 DDIM steps, CFG 4)",
                "  diffquant bench-full --steps 1 --dit-depth 2 --calib-steps 1   (smoke run, a few seconds of compute)"})
final class BenchFullCommand implements Callable<Integer> {
    @Option(names = "--dir", paramLabel = "DIR", description = "where the checkpoints are written (default: a new temporary folder, deleted at the end)") Path dir;
    @Option(names = "--keep", description = "keep the written folders (and sample PNGs)") boolean keep;
    @Option(names = "--steps", defaultValue = "20", description = "DDIM steps of the samples (default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--cfg", defaultValue = "4", description = "classifier-free guidance scale of the DiT sample, DiT's sample.py default (1 = none; default: ${DEFAULT-VALUE})") double cfg;
    @Option(names = "--class", defaultValue = "207", description = "ImageNet class of the DiT sample (default: ${DEFAULT-VALUE}, golden retriever)") int label;
    @Option(names = "--image-size", defaultValue = "256", description = "DiT image size in pixels, 256 or 512 (default: ${DEFAULT-VALUE})") int imageSize;
    @Option(names = "--dit-depth", defaultValue = "28", description = "DiT blocks (28 = DiT-XL/2; fewer only for a smoke run; default: ${DEFAULT-VALUE})") int ditDepth;
    @Option(names = "--threads", description = "engine threads (default: all cores)") Integer threads;
    @Option(names = "--method", defaultValue = "rtn", description = "calibration preset of the single-method run (default: ${DEFAULT-VALUE})") String method;
    @Option(names = "--wbits", description = "weight bits (default: 8 for the single --method run, each preset's own with --methods)") Integer wbits;
    @Option(names = "--abits", description = "activation bits (default: 8 for the single --method run, each preset's own with --methods)") Integer abits;
    @Option(names = "--calib-steps", description = "DDIM steps of the calibration sampling run (default: 4; 2 with --methods/--analyses, "
            + "whose TFMQ presets tabulate DiT-XL/2's temporal features at every one: steps x 1001 labels x 195,840 values, 0.8 GB per step "
            + "and table)") Integer calibStepsOption;
    private int calibSteps;
    @Option(names = "--calib-timesteps", defaultValue = "2", description = "calibration timesteps used (default: ${DEFAULT-VALUE})") int calibTimesteps;
    @Option(names = "--calib-samples", defaultValue = "1", description = "images sampled for calibration (default: ${DEFAULT-VALUE})") int calibSamples;
    @Option(names = "--load-only", description = "stop after writing and loading (no sampling, calibration or export): a memory check") boolean loadOnly;
    @Option(names = "--no-oom-check", description = "skip the check of the out-of-memory message in a child JVM") boolean noOomCheck;
    @Option(names = "--table", paramLabel = "FILE", description = "also write the markdown table to FILE") Path tableFile;
    @Option(names = "--models", split = ",", paramLabel = "MODEL", defaultValue = "dit,unet",
            description = "dit (DiT-XL/2 + SD VAE) and/or unet (DDPM CIFAR-10) (default: ${DEFAULT-VALUE})") List<String> models;
    @Option(names = "--methods", split = ",", paramLabel = "PRESET", description = "every listed method preset (or all) instead of --method: each is "
            + "calibrated with the budget below, its config and quantized checkpoint exported, the checkpoint loaded back into a fresh model and "
            + "compared with the fake-quant output of one denoiser call") List<String> methods;
    @Option(names = "--analyses", split = ",", paramLabel = "ANALYSIS", description = "analyses of 'diffquant analyze' to run on each denoiser "
            + "(temporal-error, mismatch, trajectory, perturbation, layer-sensitivity, histogram or all); the first three compare the configs of "
            + "--analysis-configs with FP; perturbation reports MSE only (no FID: these are not Fashion-MNIST models)") List<String> analyses;
    @Option(names = "--recon-iters", defaultValue = "2", description = "--methods: reconstruction steps per block or layer (recon_iters; the presets' "
            + "default is 300, the papers' 20,000; default: ${DEFAULT-VALUE})") int reconIters;
    @Option(names = "--recon-batch", defaultValue = "1", description = "--methods: rows per reconstruction step (recon_batch; preset default 32; default: ${DEFAULT-VALUE})") int reconBatch;
    @Option(names = "--tiar-iters", defaultValue = "4", description = "--methods: TIAR steps (tiar_iters, per TIAR stage when blockwise; preset default 2000; default: ${DEFAULT-VALUE})") int tiarIters;
    @Option(names = "--tiar-batch", defaultValue = "8", description = "--methods: (t, y) pairs per TIAR step (tiar_batch; preset default 128; default: ${DEFAULT-VALUE})") int tiarBatch;
    @Option(names = "--analysis-steps", defaultValue = "2", description = "--analyses: DDIM steps = timesteps of every analysis (default: ${DEFAULT-VALUE})") int analysisSteps;
    @Option(names = "--analysis-samples", defaultValue = "1", description = "--analyses: samples of trajectory, layer-sensitivity and histogram (default: ${DEFAULT-VALUE})") int analysisSamples;
    @Option(names = "--analysis-configs", split = ",", paramLabel = "PRESET", description = "--analyses: calibrated presets that temporal-error, "
            + "mismatch and trajectory compare (default: every calibrated preset)") List<String> analysisConfigs;
    @Option(names = "--lambdas", split = ",", paramLabel = "L", defaultValue = "0.1", description = "--analyses perturbation: noise magnitudes (default: ${DEFAULT-VALUE})") List<Double> lambdas;
    @Option(names = "--perturbation-images", defaultValue = "1", description = "--analyses perturbation: images per setting (default: ${DEFAULT-VALUE})") int perturbationImages;
    @Option(names = "--spec", defaultValue = "w:int4-asym/channel/minmax", description = "--analyses layer-sensitivity and histogram: the spec, as "
            + "analyze --spec (default: ${DEFAULT-VALUE})") String spec;
    @Option(names = "--sensitivity-layers", paramLabel = "GLOB", description = "--analyses layer-sensitivity: the layers probed (state_dict prefix globs), "
            + "repeatable; default all") List<String> sensitivityLayers = new ArrayList<>();
    @Option(names = "--sensitivity-every", defaultValue = "1", paramLabel = "K", description = "--analyses layer-sensitivity: probe every K-th "
            + "of the selected layers in model order (1 = all; each probe costs one denoiser call per analysis step; default: ${DEFAULT-VALUE})")
    int sensitivityEvery;
    @Option(names = "--histogram-layers", paramLabel = "GLOB", description = "--analyses histogram: the layers (globs), repeatable; default all")
    List<String> histogramLayers = new ArrayList<>();
    @Option(names = "--bins", defaultValue = "64", description = "--analyses histogram: bins (default: ${DEFAULT-VALUE})") int bins;

    private final List<String[]> rows = new ArrayList<>();

    private final List<String> failures = new ArrayList<>();

    private static <T> T measure(FullSizeSuite.Body<T> body, Stage[] out) throws Exception { return FullSizeSuite.measure(body, out); }

    private void row(String model, String stage, Stage s, String notes) {
        rows.add(new String[] {model, stage, s == null ? "-" : fmt("%.1f", s.seconds()), s == null ? "-" : fmt("%.0f", s.peakHeap() / 1048576.0),
                notes.replace("|", "\\|")});
        System.err.printf("  %s / %s: %s s, peak heap %s MiB; %s%n", model, stage, rows.getLast()[2], rows.getLast()[3], notes);
    }

    private static String fmt(String f, Object... a) { return String.format(Locale.ROOT, f, a); }

    @Override public Integer call() throws Exception {
        if (imageSize % 8 != 0 || imageSize <= 0) throw new IllegalArgumentException("--image-size must be a positive multiple of 8, got " + imageSize);
        if (steps < 1 || ditDepth < 1) throw new IllegalArgumentException("--steps and --dit-depth must be at least 1");
        for (String m : models) if (!m.equals("dit") && !m.equals("unet")) throw new IllegalArgumentException("--models '" + m + "': expected dit and/or unet");
        calibSteps = calibStepsOption != null ? calibStepsOption : suite() ? 2 : 4;
        if (calibSteps < 1 || calibTimesteps < 1 || calibSamples < 1) throw new IllegalArgumentException("--calib-steps, --calib-timesteps and --calib-samples must be at least 1");
        if (suite()) {
            presetList();
            if (analyses != null) AnalysisRuns.parse(analyses, "--analyses");
            analysisOptions();
            if (reconIters < 1 || reconBatch < 1 || tiarIters < 1 || tiarBatch < 1)
                throw new IllegalArgumentException("--recon-iters, --recon-batch, --tiar-iters and --tiar-batch must be at least 1");
        }
        int nThreads = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        Parallel.setThreads(nThreads);
        NativeThreads.setCallerThreads(nThreads);
        boolean temp = dir == null;
        Path root = temp ? Files.createTempDirectory("diffquant-bench-full") : dir;
        Files.createDirectories(root);
        long wall0 = System.nanoTime();
        String machine = fmt("%d cores, %s, GEMM %s, %d engine threads, max heap %.1f GiB, physical memory %.1f GiB, %s",
                Runtime.getRuntime().availableProcessors(), System.getProperty("os.arch"), Blas.get().name(), Parallel.threads(),
                Runtime.getRuntime().maxMemory() / 1073741824.0, MemoryBudget.physicalMemory() / 1073741824.0, Instant.now());
        System.err.println("bench-full: " + machine + "; folder " + root);
        try {
            if (models.contains("dit")) runDiT(root);
            if (models.contains("unet")) runUNet(root);
        } finally {
            if (temp && !keep) FullSizeSuite.deleteTree(root);
        }
        StringBuilder md = new StringBuilder();
        md.append(fmt("Full-size random-weight checkpoints (bin/diffquant bench-full%s), %s; total %.0f s.%n%n",
                describeArgs(), machine, (System.nanoTime() - wall0) / 1e9));
        md.append("| model | stage | time (s) | peak heap (MiB) | notes |\n|---|---|---:|---:|---|\n");
        for (String[] r : rows) md.append("| ").append(String.join(" | ", r)).append(" |\n");
        System.out.print(md);
        if (tableFile != null) io.diffquant.engine.io.AtomicFiles.writeString(tableFile, md.toString());
        if (!failures.isEmpty()) {
            System.err.println("bench-full: " + failures.size() + " check(s) failed: " + String.join("; ", failures));
            return 1;
        }
        return 0;
    }

    private String describeArgs() {
        List<String> a = new ArrayList<>();
        if (steps != 20) a.add("--steps " + steps);
        if (cfg != 4) a.add("--cfg " + cfg);
        if (imageSize != 256) a.add("--image-size " + imageSize);
        if (ditDepth != 28) a.add("--dit-depth " + ditDepth);
        if (calibSteps != (suite() ? 2 : 4)) a.add("--calib-steps " + calibSteps);
        if (calibTimesteps != 2) a.add("--calib-timesteps " + calibTimesteps);
        if (calibSamples != 1) a.add("--calib-samples " + calibSamples);
        if (loadOnly) a.add("--load-only");
        if (!models.equals(List.of("dit", "unet"))) a.add("--models " + String.join(",", models));
        if (!suite() && (!"rtn".equals(method) || bits(wbits) != 8 || bits(abits) != 8)) a.add("--method " + method + " --wbits " + bits(wbits) + " --abits " + bits(abits));
        if (suite()) {
            a.add("--methods " + String.join(",", methods == null ? List.of(method) : methods));
            if (wbits != null) a.add("--wbits " + wbits);
            if (abits != null) a.add("--abits " + abits);
            a.add(fmt("--recon-iters %d --recon-batch %d --tiar-iters %d --tiar-batch %d", reconIters, reconBatch, tiarIters, tiarBatch));
            if (analyses != null) {
                a.add("--analyses " + String.join(",", analyses) + fmt(" --analysis-steps %d --analysis-samples %d", analysisSteps, analysisSamples));
                if (analysisConfigs != null) a.add("--analysis-configs " + String.join(",", analysisConfigs));
                if (!lambdas.equals(List.of(0.1)) || perturbationImages != 1) a.add("--lambdas " + lambdas.stream().map(String::valueOf)
                        .collect(java.util.stream.Collectors.joining(",")) + " --perturbation-images " + perturbationImages);
                if (!spec.equals("w:int4-asym/channel/minmax")) a.add("--spec " + spec);
                for (String l : sensitivityLayers) a.add("--sensitivity-layers '" + l + "'");
                if (sensitivityEvery != 1) a.add("--sensitivity-every " + sensitivityEvery);
                for (String l : histogramLayers) a.add("--histogram-layers '" + l + "'");
            }
        }
        return a.isEmpty() ? "" : " " + String.join(" ", a);
    }

    // ------------------------------------------------------------------ DiT-XL/2 + SD VAE

    private void runDiT(Path root) throws Exception {
        DiTConfig xl = DiTConfig.named("DiT-XL/2", imageSize / 8, 1000, true);
        DiTConfig cfgD = ditDepth == xl.depth() ? xl : new DiTConfig(xl.inputSize(), xl.patchSize(), xl.inChannels(), xl.hiddenSize(),
                ditDepth, xl.numHeads(), xl.mlpRatio(), xl.classDropoutProb(), xl.numClasses(), xl.learnSigma());
        String name = ditDepth == xl.depth() ? "DiT-XL/2-" + imageSize : "DiT-XL/2-" + imageSize + " (depth " + ditDepth + ")";
        Path ditDir = root.resolve("dit"), vaeDir = root.resolve("sd-vae-ft-ema");
        Stage[] s = new Stage[1];

        Path wf = measure(() -> RandomCheckpoints.writeDiT(ditDir, cfgD, 1), s);
        row(name, "write random checkpoint", s[0], fmt("%.2f GB safetensors, streamed tensor by tensor", Files.size(wf) / 1e9));
        Path vwf = measure(() -> RandomCheckpoints.writeVae(vaeDir, AutoencoderKLConfig.stableDiffusion(), 1000), s);
        row("SD VAE (sd-vae-ft-ema)", "write random checkpoint", s[0], fmt("%.2f GB safetensors", Files.size(vwf) / 1e9));

        if (!noOomCheck) oomCheck(name, ditDir);

        long heap0 = usedAfterGc();
        DiffusionModel dit = measure(() -> ModelFolder.load(ditDir).model(), s);
        row(name, "load (memory-mapped)", s[0], fmt("%,d parameters = %.0f MiB FP32; retained heap +%.0f MiB (weights once; G1 rounds big arrays up to whole regions)", dit.parameterCount(),
                4.0 * dit.parameterCount() / 1048576, (usedAfterGc() - heap0) / 1048576.0));
        heap0 = usedAfterGc();
        AutoencoderKL vae = measure(() -> AutoencoderKL.load(vaeDir), s);
        row("SD VAE (sd-vae-ft-ema)", "load (memory-mapped)", s[0], fmt("%,d parameters = %.0f MiB FP32; retained heap +%.0f MiB",
                vae.parameterCount(), 4.0 * vae.parameterCount() / 1048576, (usedAfterGc() - heap0) / 1048576.0));

        if (loadOnly) return;
        sampleAndDecode(name, dit, cfgD, vae, root);
        vae = null;    // the VAE is not quantized: let its 0.5 GB go before the calibrations
        quantize(name, dit, root.resolve("dit-quant"), cfgD.inputSize());
    }

    /** Samples 1 image with DiT-XL/2 (DDIM, CFG as DiT's sample.py), decodes it with the VAE and times the VAE encoder. */
    private void sampleAndDecode(String name, DiffusionModel dit, DiTConfig cfgD, AutoencoderKL vae, Path root) throws Exception {
        Stage[] s = new Stage[1];
        LatentDiffusionPipeline p = new LatentDiffusionPipeline(dit, vae);
        SampleRequest req = p.request(new int[] {label}, cfg, "ddim", steps, 0).build();
        int callBatch = cfg != 1 ? 2 : 1;
        long flopsRun = AnalyticFlops.dit(cfgD, callBatch) * steps;
        Tensor latents = measure(() -> {
            SamplingRun run = Sampling.start(req);
            while (run.hasNext()) run.next();
            return run.result();
        }, s);
        row(name, fmt("sample 1 image, %d DDIM steps%s", steps, cfg != 1 ? fmt(", CFG %.1f", cfg) : ""), s[0],
                fmt("%.1f GFLOP per call (batch %d, analytic), %.0f GFLOP in all: **%.1f GFLOP/s**, %.2f s/step",
                        AnalyticFlops.dit(cfgD, callBatch) / 1e9, callBatch, flopsRun / 1e9, flopsRun / 1e9 / s[0].seconds(), s[0].seconds() / steps));
        long[] vaeFlops = {0};
        Tensor img = withConvFlops(vae, vaeFlops, () -> measure(() -> p.decode(latents), s));
        long attn = vaeAttentionFlops(vae.config(), latents.dim(2) * latents.dim(3));
        row("SD VAE (sd-vae-ft-ema)", fmt("decode %dx%dx4 -> %dx%d px", latents.dim(2), latents.dim(3), img.dim(2), img.dim(3)), s[0],
                fmt("%.0f GFLOP: **%.1f GFLOP/s**; image finite: %s", (vaeFlops[0] + attn) / 1e9, (vaeFlops[0] + attn) / 1e9 / s[0].seconds(), img.allFinite()));
        if (keep) ImageGrid.writePng(ImageGrid.grid(img, 1, 0), root.resolve("dit-sample.png"));
        vaeFlops[0] = 0;
        Tensor z = withConvFlops(vae, vaeFlops, () -> measure(() -> vae.encodeMean(img), s));
        row("SD VAE (sd-vae-ft-ema)", fmt("encode %dx%d px (calibration from real images)", img.dim(2), img.dim(3)), s[0],
                fmt("%.0f GFLOP: %.1f GFLOP/s; latents %s", (vaeFlops[0] + attn) / 1e9, (vaeFlops[0] + attn) / 1e9 / s[0].seconds(),
                        java.util.Arrays.toString(z.shape())));
        row("SD VAE (sd-vae-ft-ema)", "TIB / calibration / export", null, "not applicable: the VAE has no timestep input; it is not quantized here");
    }

    // ------------------------------------------------------------------ DDPM CIFAR-10 UNet

    private void runUNet(Path root) throws Exception {
        String name = "DDPM CIFAR-10 UNet";
        UNet2DConfig c = RandomCheckpoints.ddpmCifar10();
        Path uDir = root.resolve("ddpm-cifar10-32"), cvFile = root.resolve("model-790000-compvis.safetensors"), cvDir = root.resolve("ddpm-cifar10-compvis");
        Stage[] s = new Stage[1];
        Path wf = measure(() -> RandomCheckpoints.writeUNet(uDir, c, 2000), s);
        row(name, "write random checkpoint (diffusers)", s[0], fmt("%.0f MB, google/ddpm-cifar10-32 config", Files.size(wf) / 1e6));
        measure(() -> RandomCheckpoints.writeCompVis(cvFile, c, 2000), s);
        row(name, "write random checkpoint (CompVis/DDIM names)", s[0], fmt("%.0f MB", Files.size(cvFile) / 1e6));
        CheckpointImport.Result imp = measure(() -> CheckpointImport.run(new CheckpointImport.Request(cvFile, cvDir, CheckpointImport.Kind.COMPVIS,
                null, 32, 0, false, null, null, null, 0)), s);
        row(name, "import CompVis -> diffusers folder", s[0], fmt("%d tensors, %,d parameters (import loads the result back)", imp.tensors(), imp.parameters()));
        DiffusionModel u = measure(() -> ModelFolder.load(uDir).model(), s);
        DiffusionModel ucv = ModelFolder.load(cvDir).model();
        boolean same = true;
        for (var e : u.stateDict().entrySet()) same &= java.util.Arrays.equals(e.getValue().data(), ucv.stateDict().get(e.getKey()).data());
        ucv = null;
        row(name, "load (memory-mapped)", s[0], fmt("%,d parameters = %.0f MiB FP32; CompVis import identical to the diffusers folder: %s",
                u.parameterCount(), 4.0 * u.parameterCount() / 1048576, same));
        if (loadOnly) return;
        Tensor x = RandomCheckpoints.random("x", new int[] {1, 3, 32, 32}, 7);
        long flops = FlopCounter.count(u, x, new float[] {500}, null);
        SampleRequest req = SampleRequest.forModel(u, 1).sampler(Sampler.named("ddim", 0.0))
                .respacing(LatentDiffusionPipeline.respacing("ddim", steps)).seed(0).build();
        Tensor out = measure(() -> {
            SamplingRun run = Sampling.start(req);
            while (run.hasNext()) run.next();
            return run.result();
        }, s);
        row(name, fmt("sample 1 image 32x32, %d DDIM steps", steps), s[0], fmt("%.2f GFLOP per call (counted), **%.1f GFLOP/s**; finite: %s",
                flops / 1e9, flops * (double) steps / 1e9 / s[0].seconds(), out.allFinite()));
        quantize(name, u, root.resolve("unet-quant"), 32);
    }

    // ------------------------------------------------------------------ TIB, calibration, export

    private void quantize(String name, DiffusionModel m, Path dir, int size) throws Exception {
        Stage[] s = new Stage[1];
        TemporalInfoBlock tib = measure(() -> TemporalInfoBlock.of(m), s);
        row(name, "find TIB", s[0], fmt("%d temporal layers, %d features (width %,d)%s", tib.layers().size(), tib.features().size(),
                tib.totalWidth(), tib.conditional() ? fmt(", %d labels", tib.labels().length) : ""));
        Files.createDirectories(dir);
        ModelIdentity id = measure(() -> ModelIdentity.of(m, name), s);
        row(name, "model identity (sha256 of the weights)", s[0], "written into the config");
        CalibrationSettings cs = new CalibrationSettings("ddim", calibSteps, 0, "linear", 1, calibSamples, calibSamples, 0,
                TimestepSubset.uniform(Math.min(calibTimesteps, calibSteps), calibSamples, 0), 16, 1 << 16);
        if (suite()) {
            try {
                runSuite(name, m, id, tib, cs, dir);
            } finally {
                FullSizeSuite.deleteTree(dir);
            }
            return;
        }
        int wb = bits(wbits), ab = bits(abits);
        QuantConfig c = measure(() -> CalibrationJob.run(new CalibrationJob.Request(m, id, method, Map.of("w_bits", wb, "a_bits", ab),
                List.of(), cs, dir.resolve("calib"), null)), s);
        row(name, fmt("calibrate %s W%dA%d", method, wb, ab), s[0], fmt("%d sample(s), %d DDIM steps recorded, %d timestep(s) used",
                calibSamples, calibSteps, Math.min(calibTimesteps, calibSteps)));
        QuantizedCheckpoint.Summary sum = measure(() -> {
            QuantizedModel q = QuantConfigs.attach(c, m, false);
            try {
                return QuantizedCheckpoint.write(q, c, dir.resolve("quantized.safetensors"));
            } finally {
                q.detach();
            }
        }, s);
        row(name, "export quantized checkpoint", s[0], fmt("%d quantized weights, %.0f MB file (%.1f %% of FP32)", sum.quantizedTensors(),
                sum.fileBytes() / 1e6, 100 * sum.fileRatio()));
        FullSizeSuite.deleteTree(dir);
    }

    // ------------------------------------------------------------------ --methods / --analyses

    private boolean suite() { return methods != null || analyses != null; }

    private static int bits(Integer b) { return b == null ? 8 : b; }

    private List<String> presetList() { return FullSizeSuite.presets(methods != null ? methods : List.of(method)); }

    private FullSizeSuite.AnalysisOptions analysisOptions() {
        if (analysisSteps < 1 || analysisSamples < 1 || perturbationImages < 1 || bins < 1 || sensitivityEvery < 1)
            throw new IllegalArgumentException("--analysis-steps, --analysis-samples, --perturbation-images, --bins and --sensitivity-every must be at least 1");
        if (lambdas == null || lambdas.isEmpty()) throw new IllegalArgumentException("--lambdas: give at least one value");
        return new FullSizeSuite.AnalysisOptions(new AnalysisSettings("ddim", analysisSteps, 0, "linear", 1, 0, analysisSamples, analysisSamples),
                lambdas.stream().mapToDouble(Double::doubleValue).toArray(), perturbationImages, AnalyzeCommand.parseSpec(spec), sensitivityLayers, sensitivityEvery, histogramLayers, bins,
                analysisConfigs == null ? List.of() : analysisConfigs);
    }

    /** Every preset of --methods (calibrate, export, reload check) and every analysis of --analyses on one denoiser. */
    private void runSuite(String name, DiffusionModel m, ModelIdentity id, TemporalInfoBlock tib, CalibrationSettings cs, Path dir) throws Exception {
        FullSizeSuite suite = new FullSizeSuite(m, id, cs, dir);
        Stage[] s = new Stage[1];
        int[] ts = measure(suite::recordCalibrationData, s);
        row(name, "record calibration data (shared by the presets)", s[0], fmt("%d sample(s), %d DDIM steps: timesteps %s; %d timestep(s) used per preset",
                calibSamples, calibSteps, java.util.Arrays.toString(ts), Math.min(calibTimesteps, calibSteps)));
        FullSizeSuite.Budget budget = new FullSizeSuite.Budget(wbits, abits, reconIters, reconBatch, tiarIters, tiarBatch);
        for (String p : presetList()) {
            FullSizeSuite.PresetResult r;
            String label = "";
            try {
                r = suite.calibrate(p, budget);
            } catch (MemoryBudget.InsufficientMemoryException e) {
                // a stage that checks its memory (TIAR) does not fit: say so, then calibrate the rest of the method without it
                row(name, p + ": calibrate", null, "**does not fit in this heap**: " + e.getMessage());
                boolean hasTiar = Presets.byName(p).options().stream().anyMatch(o -> o.name().equals("tiar"));
                if (!hasTiar || !e.getMessage().contains("TIAR")) {
                    failures.add(name + " " + p + ": " + e.getMessage());
                    continue;
                }
                r = suite.calibrate(p, budget, Map.of("tiar", false));
                label = " with tiar = false (TIAR does not fit: row above)";
            }
            row(name, fmt("%s %s%s: calibrate, export, reload", p, r.bits(), label), r.total(), FullSizeSuite.notes(r, tib));
            if (!r.bitwise() || !r.outputFinite()) failures.add(name + " " + p + ": the reloaded checkpoint does not reproduce the fake-quant output "
                    + "(max |Δ| " + r.maxAbsDiff() + ", finite " + r.outputFinite() + ")");
        }
        if (analyses == null) return;
        FullSizeSuite.AnalysisOptions o = analysisOptions();
        Set<String> todo = AnalysisRuns.parse(analyses, "--analyses");
        for (String a : AnalysisRuns.ANALYSES) {
            if (!todo.contains(a)) continue;
            FullSizeSuite.AnalysisResult r = suite.analyze(a, o);
            row(name, "analysis " + a, r.stage(), r.key());
            // the temporal feature tables (timesteps x labels x TIB width) are only needed by temporal-error and mismatch
            if (a.equals("mismatch") || (a.equals("temporal-error") && !todo.contains("mismatch"))) suite.releaseSession();
        }
        suite.releaseSession();
    }

    // ------------------------------------------------------------------ helpers

    /** Runs {@code body} with a hook on the VAE's Linear and Conv2d layers that adds their FLOPs (2 per multiply-add). */
    private static <T> T withConvFlops(AutoencoderKL vae, long[] total, FullSizeSuite.Body<T> body) throws Exception {
        LayerHook counter = new LayerHook() {
            @Override public Tensor output(Layer l, Tensor out, ForwardContext ctx) {
                if (l instanceof Linear lin) total[0] += 2L * (out.size() / lin.out()) * lin.in() * lin.out();
                else if (l instanceof Conv2d c) total[0] += 2L * out.size() * c.in() * c.kernel() * c.kernel();
                return out;
            }
        };
        List<Layer> hooked = new ArrayList<>();
        for (Layer l : vae.layers().all()) if (l instanceof Linear || l instanceof Conv2d) { l.addHook(counter); hooked.add(l); }
        try {
            return body.run();
        } finally {
            for (Layer l : hooked) l.removeHook(counter);
        }
    }

    /** The mid-block self-attention at the latent resolution (T = h·w tokens, C channels): 4·T²·C (q·kᵀ and p·v). */
    private static long vaeAttentionFlops(AutoencoderKLConfig c, long tokens) {
        return c.midBlockAddAttention() ? 4L * tokens * tokens * c.channels(c.levels() - 1) : 0;
    }

    private static long usedAfterGc() {
        System.gc();
        return MemoryBudget.usedHeap();
    }

    /**
     * Loads the DiT folder in a child JVM whose heap is half the weights: the load must fail with the heap message
     * (MemoryBudget) instead of an OutOfMemoryError.
     */
    private void oomCheck(String name, Path ditDir) throws Exception {
        long weights = Files.size(ditDir.resolve(ModelFolder.DIT_WEIGHTS));
        long heapMiB = Math.max(64, weights / 2 / 1048576);
        String java = ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        List<String> cmd = new ArrayList<>(List.of(java));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (!a.startsWith("-Xmx") && !a.startsWith("-Xms") && !a.startsWith("-XX:MaxRAM") && !a.startsWith("-agentlib")
                    && !a.startsWith("-javaagent")) cmd.add(a);
        cmd.addAll(List.of("-Xmx" + heapMiB + "m", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "inspect", "-m", ditDir.toString()));
        Stage[] s = new Stage[1];
        String[] res = measure(() -> {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            StringBuilder outText = new StringBuilder();
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String l; (l = br.readLine()) != null; ) if (l.startsWith("error:") || l.contains("OutOfMemory")) outText.append(l).append(' ');
            }
            return new String[] {Integer.toString(p.waitFor()), outText.toString().trim()};
        }, s);
        boolean ok = "2".equals(res[0]) && res[1].contains("needs") && res[1].contains("heap") && !res[1].contains("OutOfMemory");
        row(name, fmt("load with -Xmx%dm (too small)", heapMiB), s[0], (ok ? "clear error, as expected: " : "**UNEXPECTED** (exit " + res[0] + "): ")
                + res[1]);
        if (!ok) throw new IllegalStateException("the out-of-memory check failed: exit " + res[0] + ", output: " + res[1]);
    }
}
