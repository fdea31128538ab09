package io.diffquant.app.cli;

import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.backend.cpu.Int8Specs;
import io.diffquant.engine.diffusion.GuidanceMode;
import io.diffquant.engine.diffusion.ImageNetClasses;
import io.diffquant.engine.diffusion.LatentDiffusionPipeline;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.diffusion.Respacing;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampler;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.diffusion.SamplingStep;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.export.QuantizedCheckpoint;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Samples images from a model folder into a PNG grid (and optionally a safetensors file), in full precision or
 * quantized (a config or a quantized checkpoint, or W8A8 on the fly), on an execution backend; the output says what
 * ran (FP32, fake quantization or real low-bit kernels).
 */
@Command(name = "sample", mixinStandardHelpOptions = true, description = "Sample images from a model folder to a PNG grid.")
final class SampleCommand implements Callable<Integer> {
    @Mixin ModelOption model;
    @Option(names = "--sampler", defaultValue = "ddim", description = "ddim or ddpm (default: ${DEFAULT-VALUE})") String sampler;
    @Option(names = "--steps", defaultValue = "50", description = "sampling steps (respacing of the 1000 training steps; default: ${DEFAULT-VALUE})") int steps;
    @Option(names = "--eta", defaultValue = "0", description = "DDIM eta (default: ${DEFAULT-VALUE})") double eta;
    @Option(names = "--schedule", defaultValue = "linear", description = "noise schedule: linear, scaled_linear, cosine (default: ${DEFAULT-VALUE})") String schedule;
    @Option(names = "--cfg", defaultValue = "1", description = "classifier-free guidance scale; 1 = no guidance (default: ${DEFAULT-VALUE})") double cfg;
    @Option(names = "--cfg-mode", defaultValue = "all", description = "all (guidance on every eps channel) or dit (first 3 channels, as the official DiT code)") String cfgMode;
    @Option(names = "--seed", defaultValue = "0") long seed;
    @Option(names = "--classes", split = ",", description = "class labels, cycled over --count (class-conditional models; default 0,1,2,...)") List<Integer> classes;
    @Option(names = "--count", defaultValue = "16", description = "number of images (default: ${DEFAULT-VALUE})") int count;
    @Option(names = "--batch", defaultValue = "16", description = "images per denoiser batch (default: ${DEFAULT-VALUE})") int batch;
    @Option(names = "--cols", defaultValue = "0", description = "grid columns (default: number of classes given, or sqrt(count))") int cols;
    @Option(names = "--out", defaultValue = "samples.png", description = "PNG grid (default: ${DEFAULT-VALUE})") Path out;
    @Option(names = "--vae", paramLabel = "DIR", description = "AutoencoderKL folder (e.g. sd-vae-ft-ema): decode the sampled latents to RGB, as DiT's sample.py") Path vae;
    @Option(names = "--tensors", paramLabel = "FILE", description = "also write images (N,C,H,W float32 in [-1,1]) and y (N int64) to this safetensors file") Path tensors;
    @Option(names = "--quant", paramLabel = "FILE", description = {"quantize the model: a quantization config (.json, from calibrate) or a quantized",
            "checkpoint (.safetensors, from quantize; its weights replace the folder's)"}) Path quant;
    @Option(names = "--force", description = "apply a --quant config even if it was calibrated for other weights") boolean force;
    @Option(names = "--w8a8", description = {"quantize on the fly, no calibration: W8 per-channel symmetric weights (round to nearest), A8",
            "per-token dynamic symmetric inputs of the Linear layers, what the cpu-int8 backend runs natively"}) boolean w8a8;
    @Option(names = "--backend", defaultValue = "jvm", paramLabel = "ID", description = {"where the layers run: jvm (FP32 kernels, fake quantization),",
            "cpu-int8 (oneDNN int8 GEMMs for W8A8 Linear layers) or tornado (TornadoVM kernels module); a backend that is not",
            "available falls back to jvm with a warning (default: ${DEFAULT-VALUE})"}) String backend;

    /** Attaches the quantization asked for (null when none). */
    QuantizedModel quantize(DiffusionModel m) throws java.io.IOException {
        if (quant != null && w8a8) throw new IllegalArgumentException("--quant and --w8a8 both given: choose one quantization");
        if (w8a8) return Int8Specs.attach(m, 8);
        if (quant == null) return null;
        if (!java.nio.file.Files.isRegularFile(quant)) throw new java.nio.file.NoSuchFileException(quant.toString(), null, "--quant file not found");
        String f = quant.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (f.endsWith(".safetensors")) return QuantizedCheckpoint.load(quant, m).quantized();
        if (f.endsWith(".json")) return QuantConfigs.attach(QuantConfigCodec.read(quant), m, force);
        throw new IllegalArgumentException("--quant " + quant + ": expected a quantization config (.json) or a quantized checkpoint (.safetensors)");
    }

    static String respacingFor(String sampler, int steps) {
        String ddim = "ddim" + steps;
        if ("ddim".equals(sampler)) {
            try {
                Respacing.spaceTimesteps(1000, ddim);
                return ddim;
            } catch (IllegalArgumentException ignored) { /* no integer stride: fall back to section spacing */ }
        }
        return Integer.toString(steps);
    }

    @Override public Integer call() throws Exception {
        if (count < 1 || batch < 1 || steps < 1) throw new IllegalArgumentException("--count, --batch and --steps must be >= 1");
        ModelFolder.Loaded loaded = model.load();
        DiffusionModel m = loaded.model();
        LatentDiffusionPipeline latent = vae == null ? null : new LatentDiffusionPipeline(m, AutoencoderKL.load(vae));
        int[] y = null;
        if (m.numClasses() > 0) {
            y = new int[count];
            for (int i = 0; i < count; i++) y[i] = classes == null || classes.isEmpty() ? i % m.numClasses() : classes.get(i % classes.size());
            for (int v : y) if (v < 0 || v >= m.numClasses()) throw new IllegalArgumentException("--classes: label " + v + " outside [0, " + m.numClasses() + ")");
        } else if (classes != null) {
            throw new IllegalArgumentException("--classes given but " + loaded.folder() + " is an unconditional model");
        }
        GuidanceMode mode = switch (cfgMode) {
            case "all" -> GuidanceMode.ALL_CHANNELS;
            case "dit" -> GuidanceMode.DIT_COMPATIBLE;
            default -> throw new IllegalArgumentException("--cfg-mode must be 'all' or 'dit', got '" + cfgMode + "'");
        };
        String respacing = respacingFor(sampler, steps);
        Sampler s = Sampler.named(sampler, eta);
        NoiseSchedule sched = NoiseSchedule.named(schedule, 1000);
        ExecutionBackends.requireKnown(backend);   // an unknown id fails before the model is quantized
        List<Tensor> parts = new ArrayList<>();
        QuantizedModel q = quantize(m);
        ExecutionInfo execution;
        long t0;
        try (PreparedDenoiser d = ExecutionBackends.prepare(backend, m, q)) {
            execution = d.execution();
            System.err.println("execution: " + execution.label());
            t0 = System.nanoTime();
            for (int from = 0; from < count; from += batch) {
                int n = Math.min(batch, count - from);
                SampleRequest.Builder b = SampleRequest.forModel(m, n).denoiser(d).sampler(s).respacing(respacing).schedule(sched)
                        .seed(seed).firstSampleIndex(from);
                if (y != null) {
                    b.labels(java.util.Arrays.copyOfRange(y, from, from + n));
                    if (cfg != 1.0) b.cfg(cfg, mode);
                }
                SamplingRun run = Sampling.start(b.build());
                while (run.hasNext()) {
                    SamplingStep st = run.next();
                    System.err.printf("\rimages %d-%d of %d: step %d/%d (t=%d)   ", from + 1, from + n, count, st.index() + 1, st.totalSteps(), st.t());
                }
                parts.add(latent == null ? run.result() : latent.decode(run.result()));
            }
        } finally {
            if (q != null) q.detach();
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        System.err.println();
        Tensor images = Tensor.concatRows(parts.toArray(new Tensor[0]));
        int c = cols > 0 ? cols : classes != null && !classes.isEmpty() ? classes.size() : (int) Math.ceil(Math.sqrt(count));
        ImageGrid.writePng(ImageGrid.grid(images, c, 2), out);
        if (tensors != null) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("model", loaded.folder().toString())
                    .metadata("sampler", sampler).metadata("respacing", respacing).metadata("eta", Double.toString(eta))
                    .metadata("cfg", Double.toString(cfg)).metadata("seed", Long.toString(seed))
                    .metadata("backend", execution.backend()).metadata("execution", execution.label()).add("images", images);
            if (y != null) {
                long[] yl = new long[y.length];
                for (int i = 0; i < y.length; i++) yl[i] = y[i];
                w.addLongs("y", yl, yl.length);
            }
            w.write(tensors);
        }
        if (latent != null && y != null && m.numClasses() == ImageNetClasses.count()) {
            java.util.LinkedHashSet<String> named = new java.util.LinkedHashSet<>();
            for (int v : y) named.add(v + " " + ImageNetClasses.name(v));
            System.out.println("ImageNet classes: " + String.join(", ", named));
        }
        System.out.printf("%d images (%s, %s, cfg %.2f, seed %d) in %.2f s -> %s%s%n", count, sampler, respacing, cfg, seed, secs, out,
                tensors == null ? "" : " and " + tensors);
        System.out.println("execution: " + execution.label());
        return 0;
    }
}
