package io.diffquant.app.cli;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The train command end to end on a synthetic Fashion-MNIST directory with a tiny DiT (a few steps each). */
class TrainCommandTest {
    @TempDir Path dir;

    /** 28x28 input, patch 7: 16 tokens of width 16, one block, 10 classes + the null class. */
    static final String TINY_DIT = """
            {"_class_name": "DiT", "input_size": 28, "patch_size": 7, "in_channels": 1, "hidden_size": 16, "depth": 1,
             "num_heads": 2, "mlp_ratio": 2.0, "class_dropout_prob": 0.1, "num_classes": 10, "learn_sigma": true}
            """;

    /** Writes uncompressed train IDX files of n random-ish 28x28 images with labels i % 10. */
    private Path fakeFashionMnist(int n) throws IOException {
        Path d = dir.resolve("fmnist");
        Files.createDirectories(d);
        Random r = new Random(7);
        ByteArrayOutputStream bi = new ByteArrayOutputStream(), bl = new ByteArrayOutputStream();
        DataOutputStream di = new DataOutputStream(bi), dl = new DataOutputStream(bl);
        di.writeInt(0x00000803);
        di.writeInt(n);
        di.writeInt(28);
        di.writeInt(28);
        dl.writeInt(0x00000801);
        dl.writeInt(n);
        for (int i = 0; i < n; i++) {
            for (int p = 0; p < 784; p++) di.write((p / 28 + i) % 10 < 4 ? 200 + r.nextInt(56) : r.nextInt(30));
            dl.write(i % 10);
        }
        Files.write(d.resolve("train-images-idx3-ubyte"), bi.toByteArray());
        Files.write(d.resolve("train-labels-idx1-ubyte"), bl.toByteArray());
        return d;
    }

    private static String[] args(String... a) { return a; }

    @Test void resumedRunGivesTheSameWeightsAsAnUninterruptedOne() throws IOException {
        Path data = fakeFashionMnist(40);
        Path cfg = dir.resolve("dit.json");
        Files.writeString(cfg, TINY_DIT);
        String[] common = {"--data", data.toString(), "--batch", "8", "--lr", "1e-3", "--ema-decay", "0.95", "--seed", "11",
                "--threads", "2", "--log-seconds", "0"};

        Path full = dir.resolve("full");
        CliTest.Result a = CliTest.run(concat(args("train", "--model-config", cfg.toString(), "--out", full.toString(), "--steps", "6"), common));
        assertEquals(0, a.code(), a.err());
        assertTrue(a.out().contains("model folder written"), a.out());
        assertTrue(Files.isRegularFile(dir.resolve("full.checkpoint.safetensors")), "default checkpoint next to --out");

        Path part = dir.resolve("part"), ck = dir.resolve("part.ck");
        CliTest.Result b = CliTest.run(concat(args("train", "--model-config", cfg.toString(), "--out", part.toString(), "--steps", "3",
                "--checkpoint", ck.toString()), common));
        assertEquals(0, b.code(), b.err());
        assertEquals(3, Json.read(part.resolve("training.json")).requireLong("steps"));
        // recipe options may be repeated on resume if equal; the data and step limit are given again
        CliTest.Result c = CliTest.run("train", "--resume", ck.toString(), "--out", part.toString(), "--steps", "6", "--data", data.toString(),
                "--seed", "11", "--threads", "2", "--log-seconds", "0");
        assertEquals(0, c.code(), c.err());

        assertArrayEquals(Files.readAllBytes(full.resolve(ModelFolder.DIT_WEIGHTS)), Files.readAllBytes(part.resolve(ModelFolder.DIT_WEIGHTS)),
                "3 + 3 resumed steps give the weights of 6 uninterrupted steps, bit for bit");
        JsonView ra = Json.read(full.resolve("training.json")), rc = Json.read(part.resolve("training.json"));
        assertEquals(6, rc.requireLong("steps"));
        assertEquals(ra.get("final_loss").node(), rc.get("final_loss").node());
        assertEquals(ra.requireString("weights_sha256"), rc.requireString("weights_sha256"));
        ModelFolder.Loaded m = ModelFolder.load(part);
        assertInstanceOf(DiT.class, m.model());
        assertEquals(10, m.model().numClasses());
        assertEquals(Json.parse(TINY_DIT, "t").node(), Json.read(part.resolve("config.json")).node(), "config.json is the training config");

        // a resumed run keeps its recipe
        CliTest.Result d = CliTest.run("train", "--resume", ck.toString(), "--out", part.toString(), "--steps", "7", "--data", data.toString(),
                "--lr", "5e-4");
        assertEquals(2, d.code());
        assertTrue(d.err().contains("--lr 5.0E-4 differs from the checkpoint's 0.001"), d.err());
        // the model samples: the sample command reads the folder
        CliTest.Result s = CliTest.run("sample", "--model", part.toString(), "--steps", "2", "--count", "2", "--out", dir.resolve("s.png").toString());
        assertEquals(0, s.code(), s.err());
    }

    @Test void missingDataDirectoryNamesTheDebianPackage() throws IOException {
        Path cfg = dir.resolve("dit.json");
        Files.writeString(cfg, TINY_DIT);
        Path missing = dir.resolve("no-such-dir");
        CliTest.Result r = CliTest.run("train", "--model-config", cfg.toString(), "--data", missing.toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("error: --data " + missing) && r.err().contains("dataset-fashion-mnist"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());

        Path empty = dir.resolve("empty");
        Files.createDirectories(empty);
        r = CliTest.run("train", "--model-config", cfg.toString(), "--data", empty.toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("train-images-idx3-ubyte") && r.err().contains("dataset-fashion-mnist"), r.err());
        assertFalse(Files.exists(dir.resolve("o")), "nothing written on error");
    }

    @Test void modelConfigAndResumeAreExclusive() throws IOException {
        CliTest.Result r = CliTest.run("train", "--model-config", "a.json", "--resume", "b.safetensors", "--out", dir.toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("mutually exclusive"), r.err());
        r = CliTest.run("train", "--out", dir.toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("--model-config") && r.err().contains("--resume"), r.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
