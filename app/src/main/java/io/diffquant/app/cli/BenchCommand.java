package io.diffquant.app.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.analysis.FlopCounter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.NativeThreads;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;

/**
 * FP32 denoiser throughput of this engine against PyTorch (tools/bench/torch_bench.py) on identical weights,
 * measured in the same run: DiT-S/2 on 32x32x4 (batch 1, 8, 32) and a small UNet on 32x32x3.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"FP32 denoiser throughput: this engine vs PyTorch (the named peer) on identical random weights, same run.",
                "Models: DiT-S/2 on 32x32x4 and a 32x32x3 UNet, written by tools/bench/torch_bench.py --make-model."})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--models-dir", description = "where the random benchmark models live (made if missing; default: target/bench-models)")
    Path modelsDir;
    @Option(names = "--dit-batches", split = ",", defaultValue = "1,8,32") List<Integer> ditBatches;
    @Option(names = "--unet-batches", split = ",", defaultValue = "1,8") List<Integer> unetBatches;
    @Option(names = "--threads", defaultValue = "2", description = "threads for both engines (default: ${DEFAULT-VALUE})") int threads;
    @Option(names = "--python", defaultValue = "/usr/bin/python3", description = "Python with torch (default: ${DEFAULT-VALUE})") String python;
    @Option(names = "--min-seconds", defaultValue = "3") double minSeconds;
    @Option(names = "--rounds", defaultValue = "3", description = {"rounds of engine-then-PyTorch measurements per model, interleaved; the",
            "ratio is the median of the rounds' ratios, so a slow spell of the machine hits both peers (default: ${DEFAULT-VALUE})"}) int rounds;
    @Option(names = "--peak-gflops", defaultValue = "230", description = "FP32 peak of this machine for the efficiency column (default: ${DEFAULT-VALUE}, 2 Zen4 cores AVX-512 FMA)") double peak;
    @Option(names = "--no-torch", description = "skip the PyTorch peer") boolean noTorch;
    @Option(names = "--cpu-time", description = {"rate both engines by process CPU time per forward (median) instead of wall-clock:",
            "steadier on a machine shared with other work, best with --threads 1"}) boolean cpuTime;

    private Path root() { return Path.of(System.getProperty("diffquant.root", ".")); }

    @Override public Integer call() throws Exception {
        Path dir = modelsDir != null ? modelsDir : root().resolve("target/bench-models");
        Path script = root().resolve("tools/bench/torch_bench.py");
        if (!Files.isDirectory(dir.resolve("dit-s-2")) || !Files.isDirectory(dir.resolve("unet-32"))) {
            System.out.println("making random benchmark models in " + dir + " ...");
            Files.createDirectories(dir);
            run(List.of(python, script.toString(), "--make-model", dir.toString()));
        }
        Parallel.setThreads(threads);
        NativeThreads.setCallerThreads(threads);   // GEMMs called from this thread: oneDNN's OpenMP team
        System.out.printf("machine: %d cores visible, %s; engine GEMM: %s, %d threads; peak assumed %.0f GFLOP/s FP32%n",
                Runtime.getRuntime().availableProcessors(), System.getProperty("os.arch"), Blas.get().name(), threads, peak);
        if (cpuTime) System.out.println("rates per CPU-second (process CPU time of a forward, all threads), not wall-clock");
        String unit = cpuTime ? "img/cpu-s" : "img/s";
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be at least 1, got " + rounds);
        System.out.printf("%d round(s) per model, engine then PyTorch in each; rates and ratio are medians over the rounds%n", rounds);
        System.out.printf("%-9s %5s %14s %14s %9s %15s %12s %8s%n", "model", "batch", "engine " + unit, "torch " + unit, "ratio",
                "ratio range", cpuTime ? "engine GF/cpu-s" : "engine GF/s", "of peak");
        for (String[] mb : new String[][] {{"dit-s-2", join(ditBatches)}, {"unet-32", join(unetBatches)}}) {
            Path folder = dir.resolve(mb[0]);
            List<Integer> batches = mb[0].startsWith("dit") ? ditBatches : unetBatches;
            DiffusionModel m = ModelFolder.load(folder).model();
            Map<Integer, List<Double>> engine = new LinkedHashMap<>(), peer = new LinkedHashMap<>(), ratio = new LinkedHashMap<>();
            Map<Integer, Long> flops = new LinkedHashMap<>();
            for (int round = 0; round < rounds; round++) {
                for (int b : batches) {
                    Random r = new Random(b);
                    Tensor x = Tensor.zeros(b, m.inChannels(), m.sampleSize(), m.sampleSize());
                    for (int i = 0; i < x.size(); i++) x.data()[i] = (float) r.nextGaussian();
                    float[] t = new float[b];
                    int[] y = m.numClasses() > 0 ? new int[b] : null;
                    for (int i = 0; i < b; i++) { t[i] = r.nextInt(1000); if (y != null) y[i] = r.nextInt(m.numClasses()); }
                    if (round == 0) flops.put(b, FlopCounter.count(m, x, t, y));
                    for (int i = 0; i < 2; i++) m.forward(x, t, y);
                    List<Double> times = new ArrayList<>(), cpu = new ArrayList<>();
                    long start = System.nanoTime();
                    while (times.size() < 5 || (System.nanoTime() - start) / 1e9 < minSeconds) {
                        long t0 = System.nanoTime(), c0 = processCpuNanos();
                        m.forward(x, t, y);
                        times.add((System.nanoTime() - t0) / 1e9);
                        cpu.add((processCpuNanos() - c0) / 1e9);
                    }
                    engine.computeIfAbsent(b, k -> new ArrayList<>()).add(b / median(cpuTime ? cpu : times));
                }
                Map<Integer, Double> torch = noTorch ? Map.of() : torchThroughput(script, folder, batches);
                for (int b : batches) {
                    Double tp = torch.get(b);
                    if (tp == null) continue;
                    peer.computeIfAbsent(b, k -> new ArrayList<>()).add(tp);
                    ratio.computeIfAbsent(b, k -> new ArrayList<>()).add(engine.get(b).getLast() / tp);
                }
            }
            for (int b : batches) {
                double ips = median(engine.get(b));
                List<Double> tp = peer.get(b), rt = ratio.get(b);
                String range = rt == null ? "-" : String.format("%.2f-%.2fx", rt.stream().mapToDouble(Double::doubleValue).min().orElse(0),
                        rt.stream().mapToDouble(Double::doubleValue).max().orElse(0));
                double gf = flops.get(b) * ips / b / 1e9;
                System.out.printf("%-9s %5d %14.2f %14s %9s %15s %12.1f %7.0f%%%n", mb[0], b, ips,
                        tp == null ? "-" : String.format("%.2f", median(tp)), rt == null ? "-" : String.format("%.2fx", median(rt)),
                        range, gf, 100 * gf / peak);
            }
        }
        return 0;
    }

    /** CPU time of this process, all threads (JIT and GC included), in nanoseconds. */
    private static long processCpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
            return os.getProcessCpuTime();
        throw new IllegalStateException("--cpu-time: this JVM does not report the process CPU time");
    }

    private static String join(List<Integer> v) { return v.toString(); }

    private static double median(List<Double> v) {
        double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return a.length % 2 == 1 ? a[a.length / 2] : 0.5 * (a[a.length / 2 - 1] + a[a.length / 2]);
    }

    private Map<Integer, Double> torchThroughput(Path script, Path folder, List<Integer> batches) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(python, script.toString(), folder.toString(), "--threads", Integer.toString(threads),
                "--min-seconds", Double.toString(minSeconds), "--batch"));
        for (int b : batches) cmd.add(Integer.toString(b));
        Map<Integer, Double> r = new LinkedHashMap<>();
        ObjectMapper om = new ObjectMapper();
        for (String line : run(cmd)) {
            if (!line.startsWith("{")) continue;
            JsonNode n = om.readTree(line);
            if (!cpuTime) r.put(n.get("batch").asInt(), n.get("images_per_second").asDouble());
            else if (n.hasNonNull("cpu_seconds_per_forward")) r.put(n.get("batch").asInt(), n.get("batch").asInt() / n.get("cpu_seconds_per_forward").asDouble());
        }
        return r;
    }

    private static List<String> run(List<String> cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        Process p;
        try {
            p = pb.start();
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot start the PyTorch peer (" + cmd.get(0) + "): " + e.getMessage()
                    + "; install python3-torch and libopenblas0-pthread, or pass --python / --no-torch");
        }
        List<String> lines = new ArrayList<>();
        try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String l; (l = br.readLine()) != null; ) lines.add(l);
        }
        if (p.waitFor() != 0) throw new IllegalStateException("PyTorch peer failed: " + String.join(" ", cmd) + "\n" + String.join("\n", lines));
        return lines;
    }
}
