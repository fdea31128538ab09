package io.diffquant.app.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.ModelFolder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.diffquant.app.cli.CliTest.GOLDEN;
import static io.diffquant.app.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bench-backends and bench-quant on the tiny golden DiT with minimal sizes: the numbers they report agree with each
 * other and with independent counts (packed weight bytes from the layer shapes), the bars are judged on those numbers,
 * the Markdown and JSON files hold what was printed. Timings themselves are not asserted (a shared machine).
 */
class BenchCommandsTest {
    static final ObjectMapper OM = new ObjectMapper();
    static final Path DIT = GOLDEN.resolve("dit-small");

    @Test void benchBackendsReportsConsistentNumbersAndTheBars(@TempDir Path tmp) throws Exception {
        Path md = tmp.resolve("r/bb.md"), js = tmp.resolve("r/bb.json");
        CliTest.Result r = run("bench-backends", "--models", "dit-fmnist", "--dit-fmnist", DIT.toString(), "--fmnist-batch", "2", "--steps", "2",
                "--reps", "1", "--kernel-seconds", "0.005", "--out", md.toString(), "--json", js.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = OM.readTree(js.toFile());
        Map<String, JsonNode> s = new HashMap<>();
        for (JsonNode n : j.get("sampling")) s.put(n.get("config").asText(), n);
        assertEquals(3, s.size(), s.keySet().toString());
        String clock = j.get("machine").get("clock").asText().equals("wall") ? "seconds" : "cpu_seconds";
        double fp = s.get("fp32").get(clock).asDouble();
        JsonNode real = s.get("real-w8a8-cpu-int8");
        assertEquals(fp / real.get(clock).asDouble(), real.get("speedup_vs_fp32").asDouble(), 1e-9);
        assertTrue(real.get("psnr_vs_fake_db").asDouble() >= 40, "cpu-int8 images within 40 dB of fake quantization: " + real);
        assertTrue(real.get("execution").asText().startsWith("cpu-int8: real low-bit kernels"), real.toString());
        assertTrue(s.get("fake-w8a8").get("execution").asText().startsWith("jvm: fake quantization"));

        // packed weight bytes from the layer shapes: W8 one byte per weight, W4 two per byte (per tensor), FP32 step per output row
        DiffusionModel m = ModelFolder.load(DIT).model();
        long w8 = 0, w4 = 0, fp32 = 0;
        for (Layer l : m.layers().all()) {
            if (!(l instanceof Linear) && !(l instanceof Conv2d)) continue;
            int[] shape = l.param("weight").shape();
            long n = l.param("weight").size();
            w8 += n + 4L * shape[0];
            w4 += (n + 1) / 2 + 4L * shape[0];
            fp32 += 4 * n;
        }
        Map<String, JsonNode> mem = new HashMap<>();
        for (JsonNode n : j.get("memory")) mem.put(n.get("format").asText(), n);
        assertEquals(fp32, mem.get("w8-channel").get("quantized_fp32_bytes").asLong());
        assertEquals(w8, mem.get("w8-channel").get("quantized_bytes").asLong());
        assertEquals(w4, mem.get("w4-channel").get("quantized_bytes").asLong());
        JsonNode w4c = mem.get("w4-channel");
        double fileRatio = w4c.get("file_bytes").asDouble() / (w4c.get("quantized_fp32_bytes").asDouble() + w4c.get("other_bytes").asDouble());
        assertEquals(fileRatio, w4c.get("file_ratio").asDouble(), 1e-12);
        for (JsonNode b : j.get("bars")) {
            if (!b.get("measure").asText().equals("w4-channel_file_ratio")) continue;
            assertEquals(fileRatio <= 1.0 / 6, b.get("pass").asBoolean(), b.toString());
        }
        // kernels: every Linear of block 0 at M = batch x tokens (adaLN: batch)
        List<String> layers = new java.util.ArrayList<>();
        for (JsonNode k : j.get("kernels")) {
            layers.add(k.get("layer").asText());
            int want = k.get("layer").asText().contains("adaLN") ? 2 : 2 * 16;    // dit-small: 8x8 input, patch 2 -> 16 tokens
            assertEquals(want, k.get("m").asInt(), k.toString());
        }
        assertEquals(List.of("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"), layers);
        String text = Files.readString(md);
        assertTrue(text.contains("### Summary against issue 7's bars") && text.contains("| real W8A8 (cpu-int8) |"), text);
        assertTrue(r.out().contains(text.substring(0, text.indexOf("### Summary"))), "the file holds what was printed");
    }

    @Test void benchQuantReportsW4A8CostForIntAndFp(@TempDir Path tmp) throws Exception {
        Path js = tmp.resolve("bq.json");
        CliTest.Result r = run("bench-quant", "-m", DIT.toString(), "--presets", "rtn", "--formats", "int,fp", "--batch", "2", "--steps", "2",
                "--pairs", "1", "--json", js.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = OM.readTree(js.toFile());
        assertEquals(2, j.get("sampling").size());
        assertEquals("rtn W4A8 INT", j.get("sampling").get(0).get("config").asText());
        assertEquals("rtn W4A8 FP", j.get("sampling").get(1).get("config").asText());
        for (JsonNode n : j.get("sampling")) {
            double ratio = n.get("ratio_vs_fp32").asDouble();
            // one round: the median ratio is that round's ratio
            assertEquals(n.get("seconds").asDouble() / n.get("fp32_seconds").asDouble(), ratio, 1e-9);
            assertEquals(ratio <= 1.3, n.get("pass").asBoolean());
            double psnr = n.get("psnr_vs_fp32_db").asDouble();
            assertTrue(psnr > 0 && psnr < 200, "W4A8 changes the images: " + psnr);
        }
        assertEquals(2, j.get("calibration").size());
        assertTrue(r.out().contains("| rtn W4A8 INT") && r.out().contains("<= 1.30x"), r.out());
    }

    @Test void badArgumentsAreOneLineErrors(@TempDir Path tmp) {
        CliTest.Result r = run("bench-quant", "-m", DIT.toString(), "--bits", "W9A8");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--presets/--bits/--formats") && r.err().contains("2..8"), r.err());
        r = run("bench-backends", "--models", "dit-xl");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown model 'dit-xl'"), r.err());
        r = run("bench-backends", "--models", "dit-fmnist", "--dit-fmnist", tmp.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("config.json missing"), r.err());
    }
}
