package io.diffquant.app.cli;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.FmnistReferenceStats;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The eval command on a tiny random 28x28x1 DiT (built here) with the shipped classifier, and its refusals. */
class EvalCommandTest {

    /** A class-conditional DiT for [N, 1, 28, 28] with small random weights (patch 4, width 32, depth 1). */
    static Path tinyFmnistDiT(Path dir) throws Exception {
        DiTConfig cfg = new DiTConfig(28, 4, 1, 32, 1, 2, 2.0, 0.1, 10, false);
        DiT model = new DiT(cfg);
        Random r = new Random(42);
        for (Tensor t : model.stateDict().values()) {
            float[] d = t.data();
            for (int i = 0; i < d.length; i++) d[i] = (float) (0.05 * r.nextGaussian());
        }
        Path folder = dir.resolve("tiny-dit-fmnist");
        ModelFolder.save(model, new com.fasterxml.jackson.databind.ObjectMapper().readTree(cfg.toJson()), folder, null);
        return folder;
    }

    @Test void evalSamplesAndWritesTheTableAndTheReferenceMetricsReproduce(@TempDir Path tmp) throws Exception {
        Path model = tinyFmnistDiT(tmp);
        Path json = tmp.resolve("m.json"), csv = tmp.resolve("m.csv"), imgs = tmp.resolve("s.safetensors");
        CliTest.Result r = CliTest.run("eval", "--model", model.toString(), "--count", "6", "--steps", "3", "--batch", "4",
                "--cfg", "2", "--seed", "5", "--out-json", json.toString(), "--out-csv", csv.toString(), "--tensors", imgs.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains(MetricsTable.FID_FMNIST) && r.out().contains("Floor"), r.out());
        MetricsTable t = MetricsTable.fromJson(Files.readString(json));
        FmnistReferenceStats ref = FmnistMetrics.loadDefault().reference();
        var fid = t.row(MetricsTable.FID_FMNIST).orElseThrow();
        assertEquals(ref.fidFloor(), fid.floor().getAsDouble(), 1e-12, "the floor stands beside FID-FMNIST");
        assertEquals(ref.sfidFloor(), t.row(MetricsTable.SFID_FMNIST).orElseThrow().floor().getAsDouble(), 1e-12);
        assertTrue(Double.isFinite(fid.value()) && fid.value() > ref.fidFloor(), "random weights are far from Fashion-MNIST: " + fid.value());
        double acc = t.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value();
        assertEquals(0.0, acc * 6 / 100 - Math.rint(acc * 6 / 100), 1e-9, "accuracy is k / 6 images: " + acc);
        assertTrue(t.row(MetricsTable.MSE).isEmpty(), "no reference, no MSE");
        List<String> lines = Files.readAllLines(csv);
        assertEquals("metric,value,std,unit,floor", lines.get(0));
        assertTrue(lines.get(1).startsWith("FID-FMNIST,"), lines.get(1));
        try (SafetensorsReader s = SafetensorsReader.open(imgs)) {
            Tensor raw = s.readFloat("images");
            assertArrayEquals(new int[] {6, 1, 28, 28}, raw.shape());
            assertArrayEquals(new long[] {0, 1, 2, 3, 4, 5}, s.readLongs("y"), "labels cycle 0..9");
            // the table is the metrics facade on the written samples clamped to [-1, 1] (recomputed here)
            float[] d = raw.data().clone();
            boolean outside = false;
            for (int i = 0; i < d.length; i++) {
                outside |= Math.abs(d[i]) > 1;
                d[i] = Math.max(-1f, Math.min(1f, d[i]));
            }
            assertTrue(outside, "a random DiT samples values outside [-1, 1], so the clamp matters here");
            MetricsTable direct = FmnistMetrics.loadDefault().evaluate(Tensor.of(d, raw.shape()), new int[] {0, 1, 2, 3, 4, 5}, null);
            assertEquals(direct.row(MetricsTable.FID_FMNIST).orElseThrow().value(), fid.value(), 1e-9 * (1 + fid.value()));
            assertEquals(direct.row(MetricsTable.CLASS_ACCURACY).orElseThrow().value(), acc, 1e-12);
        }

        // the same run against its own samples as the reference: identical images (noise keyed by seed and index)
        CliTest.Result again = CliTest.run("eval", "--model", model.toString(), "--count", "6", "--steps", "3", "--batch", "6",
                "--cfg", "2", "--seed", "5", "--reference", imgs.toString(), "--out-json", json.toString());
        assertEquals(0, again.code(), again.err());
        MetricsTable t2 = MetricsTable.fromJson(Files.readString(json));
        assertEquals(0.0, t2.row(MetricsTable.MSE).orElseThrow().value(), 1e-10);
        assertTrue(t2.row(MetricsTable.PSNR).orElseThrow().value() > 90, t2.toText());
        assertEquals(1.0, t2.row(MetricsTable.SSIM).orElseThrow().value(), 1e-6);
        assertEquals(fid.value(), t2.row(MetricsTable.FID_FMNIST).orElseThrow().value(), 1e-3 * (1 + fid.value()));

        // a reference drawn with another seed is refused
        CliTest.Result seed = CliTest.run("eval", "--model", model.toString(), "--count", "6", "--steps", "3", "--seed", "6",
                "--reference", imgs.toString());
        assertEquals(2, seed.code());
        assertTrue(seed.err().contains("seed 5") && seed.err().contains("--seed is 6"), seed.err());
    }

    @Test void evalRefusesModelsThatDoNotMakeFashionMnistImages() {
        CliTest.Result r = CliTest.run("eval", "--model", CliTest.GOLDEN.resolve("dit-small").toString(), "--count", "4", "--steps", "2");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("[N, 1, 28, 28]") && r.err().contains("[N, 4, 8, 8]"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one-line error: " + r.err());
        r = CliTest.run("eval", "--model", CliTest.GOLDEN.resolve("unet-small").toString(), "--count", "4");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("[N, 1, 28, 28]") && r.err().contains("[N, 3, 16, 16]"), r.err());
    }

    @Test void evalRefusesBadOptions(@TempDir Path tmp) throws Exception {
        Path model = tinyFmnistDiT(tmp);
        CliTest.Result r = CliTest.run("eval", "--model", model.toString(), "--count", "1");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--count"), r.err());
        r = CliTest.run("eval", "--model", model.toString(), "--count", "4", "--config", tmp.resolve("q.json").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("q.json"), "a missing config names the file: " + r.err());
        r = CliTest.run("eval", "--model", model.toString(), "--count", "4", "--reference", tmp.resolve("none.safetensors").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("none.safetensors"), r.err());
    }
}
