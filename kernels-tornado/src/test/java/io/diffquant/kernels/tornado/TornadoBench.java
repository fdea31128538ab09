package io.diffquant.kernels.tornado;

import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.dit.DiTRandomWeights;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;

/**
 * Benchmarks of the TornadoVM kernels (a command, not a unit test; docs/tornado.md):
 * <ul>
 *   <li>{@code kernels}: per-kernel throughput on the default TornadoVM device, every low-bit GEMM against the FP32 GEMM
 *       of the same variant (loop / tuned) on the same device, at the dit-fmnist and DiT-S/2 layer shapes; row kernels in
 *       GB/s;</li>
 *   <li>{@code sampling}: end-to-end DDIM sampling of a dit-fmnist-shaped DiT ({@code --model DIR} a trained folder,
 *       {@code --model dit-s2} a random DiT-S/2 at the 256 px latent size): the engine (FP32, fake W8A8) against the
 *       tornado backend (FP32 blocks, real W8A8, W4A8, NVFP4), with the PSNR of each real low-bit run against its
 *       fake-quantized twin and the weight memory of the blocks;</li>
 *   <li>{@code roofline}: an ESTIMATE from each kernel's byte and flop counts of what it should reach on an H100-class GPU.</li>
 * </ul>
 * Run with the SDK's argfile: {@code tools/bench/tornado_bench.sh [kernels|sampling|roofline|all] [options]}.
 */
public final class TornadoBench {
    private TornadoBench() {}

    public static void main(String[] args) throws Exception {
        Locale.setDefault(Locale.ROOT);
        String what = args.length > 0 ? args[0] : "all";
        double minSeconds = doubleOpt(args, "--seconds", 2.0);
        int steps = (int) doubleOpt(args, "--steps", 10);
        int batch = (int) doubleOpt(args, "--batch", 8);
        String model = stringOpt(args, "--model", null);
        System.out.println("# TornadoBench " + what + " on " + describeMachine());
        if (what.equals("kernels") || what.equals("all")) kernels(minSeconds);
        if (what.equals("sampling") || what.equals("all")) sampling(model, batch, steps);
        if (what.equals("roofline") || what.equals("all")) Roofline.print(System.out);
    }

    static double doubleOpt(String[] a, String name, double def) {
        for (int i = 0; i + 1 < a.length; i++) if (a[i].equals(name)) return Double.parseDouble(a[i + 1]);
        return def;
    }

    static String stringOpt(String[] a, String name, String def) {
        for (int i = 0; i + 1 < a.length; i++) if (a[i].equals(name)) return a[i + 1];
        return def;
    }

    static String describeMachine() {
        return "TornadoVM device '" + TornadoBackend.deviceName() + "', host " + Runtime.getRuntime().availableProcessors()
                + " cores, " + System.getProperty("java.vm.name") + " " + System.getProperty("java.version");
    }

    // ------------------------------------------------------------------ per-kernel throughput

    /** A compiled single-graph plan: inputs resident, outputs not copied back (timing harness). */
    static final class Timed implements AutoCloseable {
        private final TornadoExecutionPlan root, plan;
        final List<Double> samples = new ArrayList<>();

        Timed(Object[] resident, BiConsumer<TaskGraph, GridScheduler> body) {
            TaskGraph tg = new TaskGraph("bench" + System.nanoTime());
            tg.transferToDevice(DataTransferMode.FIRST_EXECUTION, resident);
            GridScheduler gs = new GridScheduler();
            body.accept(tg, gs);
            root = new TornadoExecutionPlan(tg.snapshot());
            TornadoExecutionPlan p = root.withCompilerFlags(TornadoVMBackendType.OPENCL, DeviceSettings.EXACT_FLAGS);
            if (!gs.keySet().isEmpty()) p = p.withGridScheduler(gs);
            plan = p;
            for (int i = 0; i < 3; i++) plan.execute();        // compile, transfer, warm up
        }

        /** One timed execution. */
        void sample() {
            long t0 = System.nanoTime();
            plan.execute();
            samples.add((System.nanoTime() - t0) * 1e-9);
        }

        double median() {
            List<Double> t = new ArrayList<>(samples);
            t.sort(null);
            return t.get(t.size() / 2);
        }

        @Override public void close() {
            try {
                root.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /**
     * Medians of interleaved executions: each round runs every plan once, so a load change on a shared machine hits
     * all peers alike (rounds until minSeconds have passed, at least 7).
     */
    static double[] interleaved(List<Timed> plans, double minSeconds) {
        long start = System.nanoTime();
        int rounds = 0;
        while (rounds < 7 || (System.nanoTime() - start) * 1e-9 < minSeconds) {
            for (Timed t : plans) t.sample();
            if (++rounds >= 100) break;
        }
        double[] m = new double[plans.size()];
        for (int i = 0; i < m.length; i++) m[i] = plans.get(i).median();
        return m;
    }

    /** Median seconds per execution of one plan. */
    static double time(Object[] resident, BiConsumer<TaskGraph, GridScheduler> body, double minSeconds) {
        try (Timed t = new Timed(resident, body)) {
            return interleaved(List.of(t), minSeconds)[0];
        }
    }

    record Shape(String model, String layer, int rows, int in, int out) {}

    static List<Shape> shapes() {
        List<Shape> s = new ArrayList<>();
        // dit-fmnist: hidden 192, mlp 768, 49 tokens; batch 8 -> 392 rows
        s.add(new Shape("dit-fmnist b8", "attn.qkv", 392, 192, 576));
        s.add(new Shape("dit-fmnist b8", "mlp.fc1", 392, 192, 768));
        s.add(new Shape("dit-fmnist b8", "mlp.fc2", 392, 768, 192));
        // DiT-S/2 at 256 px (latent 32): hidden 384, mlp 1536, 256 tokens; batch 2 -> 512 rows
        s.add(new Shape("DiT-S/2 b2", "attn.qkv", 512, 384, 1152));
        s.add(new Shape("DiT-S/2 b2", "mlp.fc1", 512, 384, 1536));
        s.add(new Shape("DiT-S/2 b2", "mlp.fc2", 512, 1536, 384));
        return s;
    }

    static void kernels(double minSeconds) {
        System.out.println();
        System.out.println("## Per-kernel throughput (device: " + TornadoBackend.deviceName() + "; ratio = FP32 time / kernel time, same variant, same device)");
        System.out.println("| shape | layer | kernel | variant | ms | GOP/s | speed-up vs FP32 | weight MB |");
        System.out.println("|---|---|---|---|---:|---:|---:|---:|");
        SplittableRandom r = new SplittableRandom(1);
        for (Shape s : shapes()) {
            Tensor w = Refs.randn(r, 0.05f, s.out, s.in), b = Refs.randn(r, 0.1f, s.out), x = Refs.randn(r, 1f, s.rows, s.in);
            PackedLinear[] ls = {
                    PackedLinear.fp32(s.layer, w, b),
                    PackedLinear.quantized(s.layer, Refs.quantizeWeight(w, IntFormat.symmetric(8), Granularity.CHANNEL), b,
                            PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f),
                    PackedLinear.quantized(s.layer, Refs.quantizeWeight(w, IntFormat.asymmetric(4), Granularity.group(64)), b,
                            PackedLinear.ActMode.DYNAMIC_TOKEN, IntFormat.symmetric(8), 0f),
                    PackedLinear.quantized(s.layer, Refs.quantizeWeight(w, BlockFormat.NVFP4, Granularity.block(16)), b,
                            PackedLinear.ActMode.NONE, null, 0f)};
            String[] names = {"FP32", "W8A8 (int8 ch.) + act quant", "W4A8 (int4-asym g64) + act quant", "NVFP4 LUT (W4A32)"};
            for (boolean tuned : new boolean[] {false, true}) {
                List<Timed> plans = new ArrayList<>();
                try {
                    for (PackedLinear l : ls) {
                        FloatArray xa = Host.floats(x.data()), y = new FloatArray(s.rows * s.out);
                        Int8Array xq = new Int8Array(s.rows * s.in);
                        FloatArray sx = new FloatArray(s.rows);
                        List<Object> res = new ArrayList<>(DeviceGraphs.weightArrays(l));
                        res.addAll(List.of(xa, y, xq, sx));
                        plans.add(new Timed(res.toArray(), (tg, gs) -> DeviceGraphs.linear(tg, gs, "l", l, xa, y, s.rows, xq, sx, tuned)));
                    }
                    double[] sec = interleaved(plans, minSeconds);
                    double ops = 2.0 * s.rows * s.in * s.out;
                    for (int k = 0; k < ls.length; k++) {
                        System.out.printf("| %s | %s | %s | %s | %.3f | %.2f | %.2fx | %.3f |%n", s.model, s.layer, names[k], tuned ? "tuned" : "loop",
                                sec[k] * 1e3, ops / sec[k] * 1e-9, sec[0] / sec[k], ls[k].weightBytes() / 1e6);
                    }
                } finally {
                    for (Timed t : plans) t.close();
                }
            }
        }
        rowKernels(minSeconds);
    }

    static void rowKernels(double minSeconds) {
        System.out.println();
        System.out.println("## Row kernels (dit-fmnist b8: 392 tokens x 192; attention 8 x 4 heads x 49 tokens x 48)");
        System.out.println("| kernel | variant | ms | GB/s (compulsory bytes) |");
        System.out.println("|---|---|---:|---:|");
        SplittableRandom r = new SplittableRandom(2);
        int n = 8, t = 49, d = 192, rows = n * t, heads = 4, hd = 48;
        FloatArray x = Host.floats(Refs.randn(r, 1f, rows, d).data()), mod = Host.floats(Refs.randn(r, 0.3f, n, 6 * d).data());
        FloatArray y = new FloatArray(rows * d), s = new FloatArray(rows), qkv = Host.floats(Refs.randn(r, 1f, rows, 3 * d).data());
        FloatArray scores = new FloatArray(n * heads * t * t), att = new FloatArray(rows * d);
        Int8Array q = new Int8Array(rows * d);
        for (boolean tuned : new boolean[] {false, true}) {
            double sec = time(new Object[] {x, q, s}, (tg, gs) -> {
                if (tuned) {
                    tg.task("t", TunedKernels::quantizeInt8PerToken, new KernelContext(), x, q, s, rows, d, 127);
                    gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(rows));
                } else tg.task("t", LoopKernels::quantizeInt8PerToken, x, q, s, rows, d, 127);
            }, minSeconds);
            System.out.printf("| per-token int8 quantization | %s | %.3f | %.2f |%n", tuned ? "tuned" : "loop", sec * 1e3, rows * d * 5.0 / sec * 1e-9);
            sec = time(new Object[] {x, mod, y}, (tg, gs) -> {
                if (tuned) {
                    tg.task("t", TunedKernels::layerNormModulate, new KernelContext(), x, mod, y, rows, t, d, 6, 0, 1, 1e-6f);
                    gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(rows));
                } else tg.task("t", LoopKernels::layerNormModulate, x, mod, y, rows, t, d, 6, 0, 1, 1e-6f);
            }, minSeconds);
            System.out.printf("| LayerNorm + adaLN modulate | %s | %.3f | %.2f |%n", tuned ? "tuned" : "loop", sec * 1e3, rows * d * 8.0 / sec * 1e-9);
            float scale = (float) Math.pow(hd, -0.5);
            sec = time(new Object[] {qkv, scores, att}, (tg, gs) -> {
                if (tuned) {
                    tg.task("t", TunedKernels::attention, new KernelContext(), qkv, att, n, t, heads, hd, scale);
                    gs.addWorkerGrid(tg.getTaskGraphName() + ".t", DeviceGraphs.groupsGrid(n * heads * t));
                } else tg.task("t", LoopKernels::attention, qkv, scores, att, n, t, heads, hd, scale);
            }, minSeconds);
            System.out.printf("| softmax attention | %s | %.3f | %.2f |%n", tuned ? "tuned" : "loop", sec * 1e3, rows * d * 16.0 / sec * 1e-9);
        }
        double sec = time(new Object[] {y}, (tg, gs) -> tg.task("t", LoopKernels::geluTanh, y, rows * d), minSeconds);
        System.out.printf("| GELU (tanh) | loop | %.3f | %.2f |%n", sec * 1e3, rows * d * 8.0 / sec * 1e-9);
        sec = time(new Object[] {x, y, mod}, (tg, gs) -> tg.task("t", LoopKernels::gatedResidual, x, y, mod, rows, t, d, 6, 2), minSeconds);
        System.out.printf("| gated residual | loop | %.3f | %.2f |%n", sec * 1e3, rows * d * 12.0 / sec * 1e-9);
    }

    // ------------------------------------------------------------------ end-to-end sampling

    /**
     * {@code --model dit-s2}: a random DiT-S/2 at the 256 px latent size (input 32, 4 channels, hidden 384, depth 12,
     * 6 heads), with weights in a trained DiT's regime ({@link DiTRandomWeights}, the same as {@code bench-backends}).
     */
    static final String DIT_S2 = "dit-s2";
    static final DiTConfig DIT_S2_CONFIG = new DiTConfig(32, 2, 4, 384, 12, 6, 4.0, 0.1, 1000, true);

    static DiT ditFmnist(String folder) throws Exception {
        if (DIT_S2.equals(folder)) return DiTRandomWeights.create(DIT_S2_CONFIG, 2);
        if (folder != null && Files.isDirectory(Path.of(folder))) {
            DiffusionModel m = ModelFolder.load(Path.of(folder)).model();
            if (m instanceof DiT d) return d;
            throw new IllegalArgumentException(folder + " holds a " + m.architecture() + ", not a DiT");
        }
        if (folder != null) throw new IllegalArgumentException("--model " + folder + ": no such model folder (expected a DiT folder or '"
                + DIT_S2 + "'; leave --model out for a random DiT of dit-fmnist's shape)");
        // the shape of dit-fmnist (config of /work/train-runs/dit-fmnist): random weights
        DiT m = KernelContract.smallDiTOf(new DiTConfig(28, 4, 1, 192, 6, 4, 4.0, 0.1, 10, true), 3);
        return m;
    }

    record Run(String name, double seconds, Tensor images, String label) {}

    static Run sample(String name, io.diffquant.engine.model.Denoiser d, DiT m, int batch, int steps) {
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) labels[i] = i % 10;
        SampleRequest req = SampleRequest.forModel(m, batch).denoiser(d).labels(labels).respacing("ddim" + steps).seed(7).build();
        long t0 = System.nanoTime();
        var res = Sampling.runToEnd(req, false);
        double sec = (System.nanoTime() - t0) * 1e-9;
        String label = d instanceof PreparedDenoiser p ? p.execution().label() : "engine";
        return new Run(name, sec, res.samples(), label);
    }

    /** One denoiser call at the sampling batch size: builds and compiles the block graphs before the timed run. */
    static void warmUp(io.diffquant.engine.model.Denoiser d, DiT m, int batch) {
        Tensor x = Refs.randn(new SplittableRandom(5), 1f, batch, m.inChannels(), m.sampleSize(), m.sampleSize());
        float[] t = new float[batch];
        int[] y = new int[batch];
        java.util.Arrays.fill(t, 999f);
        d.forward(x, t, y);
    }

    /**
     * Relative L2 error ||a - b|| / ||b|| of one denoiser call at t = 500 on the same input: how far a real low-bit
     * forward is from its fake-quantized twin before sampling amplifies the differences step after step.
     */
    static double oneCallError(io.diffquant.engine.model.Denoiser real, Tensor fakeOut, DiT m, int batch) {
        float[] a = oneCall(real, m, batch).data(), b = fakeOut.data();
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    /**
     * One denoiser call at t = 500 on a fixed input. The reference (engine) output must be taken before a backend is
     * prepared: a backend may hook the model's layers while it is open, and the model would then run the backend too.
     */
    static Tensor oneCall(io.diffquant.engine.model.Denoiser d, DiT m, int batch) {
        Tensor x = Refs.randn(new SplittableRandom(11), 1f, batch, m.inChannels(), m.sampleSize(), m.sampleSize());
        float[] t = new float[batch];
        int[] y = new int[batch];
        java.util.Arrays.fill(t, 500f);
        for (int i = 0; i < batch; i++) y[i] = i % 10;
        return d.forward(x, t, y);
    }

    static void sampling(String folder, int batch, int steps) throws Exception {
        System.out.println();
        DiT m = ditFmnist(folder);
        System.out.printf("## End-to-end sampling: %s, DDIM %d steps, batch %d, labels 0..9%n",
                DIT_S2.equals(folder) ? "random DiT-S/2 (input 32, 4 channels, patch 2, hidden 384, depth 12, 6 heads, 1000 classes, learn_sigma; weights in a trained DiT's regime, DiTRandomWeights seed 2)"
                        : folder != null && Files.isDirectory(Path.of(folder)) ? "dit-fmnist checkpoint " + folder
                        : "random DiT with the dit-fmnist config (input 28, patch 4, hidden 192, depth 6, 4 heads)",
                steps, batch);
        TensorSpec dyn8 = TensorSpec.input(IntFormat.symmetric(8), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC);
        record Q(String name, TensorSpec w, TensorSpec in) {}
        List<Q> qs = List.of(new Q("W8A8 (int8 ch., dynamic per-token int8)", TensorSpec.weight(IntFormat.symmetric(8), Granularity.CHANNEL, RangeSpec.MINMAX), dyn8),
                new Q("W4A8 (int4-asym g32, dynamic per-token int8)", TensorSpec.weight(IntFormat.asymmetric(4), Granularity.group(32), RangeSpec.MINMAX), dyn8),
                new Q("NVFP4 weights, FP32 activations", TensorSpec.weight(BlockFormat.NVFP4, Granularity.block(16), RangeSpec.MINMAX), TensorSpec.OFF));
        System.out.println("| run | seconds | s / image | vs engine FP32 | PSNR vs fake quant (dB) | one call: rel. L2 vs fake | block weights MB | execution |");
        System.out.println("|---|---:|---:|---:|---:|---:|---:|---|");
        Run fp = sample("engine FP32", m, m, batch, steps);
        print(fp, fp, null, Double.NaN, Double.NaN);
        Tensor fpOut = oneCall(m, m, batch);
        try (PreparedDenoiser p = ExecutionBackends.prepare("tornado", m, null)) {
            warmUp(p, m, batch);
            Run r = sample("tornado FP32 blocks", p, m, batch, steps);
            print(r, fp, fp, oneCallError(p, fpOut, m, batch), weightMb(p));
        }
        for (Q q : qs) {
            QuantizedModel qm = KernelContract.quantize(m, q.w, q.in);
            try {
                Run fake = sample("engine fake " + q.name, m, m, batch, steps);
                print(fake, fp, null, Double.NaN, Double.NaN);
                Tensor fakeOut = oneCall(m, m, batch);
                try (PreparedDenoiser p = ExecutionBackends.prepare("tornado", m, qm)) {
                    warmUp(p, m, batch);
                    Run r = sample("tornado real " + q.name, p, m, batch, steps);
                    print(r, fp, fake, oneCallError(p, fakeOut, m, batch), weightMb(p));
                }
                if (q.name.startsWith("W8A8")) {   // the CPU int8 path as a peer: same codes, oneDNN s8 GEMM
                    try (PreparedDenoiser p = ExecutionBackends.prepare("cpu-int8", m, qm)) {
                        warmUp(p, m, batch);
                        Run r = sample("cpu-int8 real " + q.name, p, m, batch, steps);
                        print(r, fp, fake, oneCallError(p, fakeOut, m, batch), Double.NaN);
                    }
                }
            } finally {
                qm.detach();
            }
        }
    }

    /** Device bytes of the block weights (codes, scales, zero points, tables) in MB. */
    static double weightMb(PreparedDenoiser p) {
        if (!(p instanceof TornadoBackend.Prepared tp) || tp.dit() == null)
            throw new IllegalStateException("the tornado backend did not run: " + p.execution().label());
        return tp.dit().weightBytes()[0] / 1e6;
    }

    static void print(Run r, Run fp, Run ref, double callError, double mb) {
        double psnr = ref == null ? Double.NaN : ImageMetrics.psnrFromMse(ImageMetrics.mse(r.images.data(), ref.images.data()), ImageMetrics.RANGE_SIGNED_UNIT);
        System.out.printf("| %s | %.2f | %.3f | %.2fx | %s | %s | %s | %s |%n", r.name, r.seconds, r.seconds / r.images.dim(0), fp.seconds / r.seconds,
                Double.isNaN(psnr) ? "" : String.format("%.1f", psnr), Double.isNaN(callError) ? "" : String.format("%.2e", callError),
                Double.isNaN(mb) ? "" : String.format("%.2f", mb), r.label);
    }
}
