package io.diffquant.engine.model.unet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Blas;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ms per forward of the benchmark UNet2DModel (32x32x3, block_out_channels [64, 128, 128], one ResNet per level,
 * attention at 16x16 and in the mid block, the other settings of google/ddpm-cifar10-32 = tools/bench/torch_bench.py's
 * unet-32), batch 8, against the PyTorch peer tools/bench/torch_bench.py run on the same weights in the same test.
 * Opt-in (timings on the shared build machine are noisy):
 * {@code ./mvnw -B -q -pl engine test -Dtest=UNetPerfTest -Ddiffquant.bench=true [-Ddiffquant.bench.threads=2]};
 * the numbers land in target/surefire-reports/*UNetPerfTest-output.txt.
 */
@Tag("perf")
@EnabledIfSystemProperty(named = "diffquant.bench", matches = "true", disabledReason = "timing run: pass -Ddiffquant.bench=true")
class UNetPerfTest {
    static final String CONFIG = """
            {"_class_name": "UNet2DModel", "sample_size": 32, "in_channels": 3, "out_channels": 3,
             "block_out_channels": [64, 128, 128], "layers_per_block": 1,
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 32,
             "attention_head_dim": null, "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1,
             "norm_eps": 1e-06, "resnet_time_scale_shift": "default"}""";
    static final int BATCH = 8;

    @Test void forwardTimingAgainstPyTorch(@TempDir Path dir) throws Exception {
        int threads = Integer.getInteger("diffquant.bench.threads", 2);
        int before = Parallel.threads();
        Parallel.setThreads(threads);
        try {
            UNet2DModel m = new UNet2DModel(UNet2DConfig.fromJson(CONFIG, "bench config"));
            SplittableRandom rnd = new SplittableRandom(1);
            SafetensorsWriter w = new SafetensorsWriter();
            for (var e : m.stateDict().entrySet()) {
                Tensor t = Tensor.zeros(e.getValue().shape());
                boolean normWeight = e.getKey().contains("norm") && e.getKey().endsWith(".weight");
                for (int i = 0; i < t.size(); i++) t.data()[i] = (float) ((normWeight ? 1 : 0) + 0.05 * rnd.nextGaussian());
                w.add(e.getKey(), t);
            }
            Files.writeString(dir.resolve("config.json"), m.config().toJson());
            w.write(dir.resolve("diffusion_pytorch_model.safetensors"));
            var reader = io.diffquant.engine.io.SafetensorsReader.open(dir.resolve("diffusion_pytorch_model.safetensors"));
            m.loadWeights(reader.readAllFloat(), reader.file().toString());
            reader.close();

            Tensor x = Tensor.zeros(BATCH, 3, 32, 32);
            for (int i = 0; i < x.size(); i++) x.data()[i] = (float) rnd.nextGaussian();
            float[] t = new float[BATCH];
            for (int i = 0; i < BATCH; i++) t[i] = 125 * i;
            for (int i = 0; i < 20; i++) assertTrue(m.forward(x, t, null).allFinite());
            List<Double> ms = new ArrayList<>();
            long start = System.nanoTime();
            while (ms.size() < 10 || System.nanoTime() - start < 5_000_000_000L) {
                long t0 = System.nanoTime();
                m.forward(x, t, null);
                ms.add((System.nanoTime() - t0) / 1e6);
            }
            double[] sorted = ms.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            double median = sorted[sorted.length / 2];
            System.out.printf("Java UNet2DModel 32x32x3 [64,128,128] batch %d, %d threads (%s, %d cores): median %.1f ms,"
                            + " best %.1f ms per forward over %d runs%n", BATCH, threads, Blas.get().name(),
                    Runtime.getRuntime().availableProcessors(), median, sorted[0], sorted.length);
            Double peer = pyTorch(dir, threads);
            if (peer != null) System.out.printf("PyTorch peer (tools/bench/torch_bench.py, same weights): median %.1f ms per"
                    + " forward; Java / PyTorch = %.2f%n", peer, median / peer);
            else System.out.println("PyTorch peer not run (no /usr/bin/python3 with torch or no tools/bench/torch_bench.py)");
        } finally {
            Parallel.setThreads(before);
        }
    }

    /** Median ms per forward of tools/bench/torch_bench.py on the folder, or null when it cannot run here. */
    static Double pyTorch(Path modelDir, int threads) throws IOException, InterruptedException {
        Path root = Path.of(System.getProperty("diffquant.root", ".."));
        Path script = root.resolve("tools/bench/torch_bench.py");
        Path python = Path.of("/usr/bin/python3");
        if (!Files.isRegularFile(script) || !Files.isExecutable(python)) return null;
        Process p = new ProcessBuilder(python.toString(), script.toString(), modelDir.toString(), "--batch",
                Integer.toString(BATCH), "--threads", Integer.toString(threads)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) return null;
        for (String line : out.split("\n")) {
            if (!line.startsWith("{")) continue;
            JsonNode j = new ObjectMapper().readTree(line);
            if (j.has("seconds_per_forward")) return j.get("seconds_per_forward").asDouble() * 1000;
        }
        return null;
    }
}
