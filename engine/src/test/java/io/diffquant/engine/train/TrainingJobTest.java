package io.diffquant.engine.train;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** The training facade: a tiny DiT run exported as a loadable model folder, exact resume, budgets, the data adapter, init rules. */
class TrainingJobTest {
    @TempDir Path dir;

    /** A tiny class-conditional DiT on 8x8x1: 16 tokens of width 16, one block. */
    static final String TINY_DIT = """
            {"_class_name": "DiT", "input_size": 8, "patch_size": 2, "in_channels": 1, "hidden_size": 16, "depth": 1,
             "num_heads": 2, "mlp_ratio": 2.0, "class_dropout_prob": 0.1, "num_classes": 3, "learn_sigma": true}
            """;

    /** Synthetic labelled 8x8 images: class k is a bright bar in row band k on a dark background, with noise. */
    static Dataset bars(int n, long seed) {
        Random r = new Random(seed);
        Tensor x = Tensor.zeros(n, 1, 8, 8);
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = i % 3;
            for (int p = 0; p < 64; p++) {
                int row = p / 8;
                boolean on = row / 3 == y[i] || (y[i] == 2 && row >= 6);
                x.data()[i * 64 + p] = (float) Math.max(-1, Math.min(1, (on ? 0.8 : -0.8) + 0.1 * r.nextGaussian()));
            }
        }
        return Dataset.of(x, y);
    }

    private Path config(String text) throws IOException {
        Path f = dir.resolve("config-" + text.hashCode() + ".json");
        Files.writeString(f, text);
        return f;
    }

    private static TrainingJob.Recipe recipe(long seed) { return new TrainingJob.Recipe(seed, 8, 2e-3, 0.01, 0.9, 2, 5.0); }

    @Test void tinyRunExportsALoadableModelFolderOfTheEmaWeights() throws IOException {
        Dataset data = bars(240, 1);
        Path ck = dir.resolve("ck.safetensors");
        TrainingJob job = TrainingJob.create(config(TINY_DIT), data, "bars", recipe(3),
                new TrainingJob.Limits(6, null, null, ck));
        List<TrainingJob.Progress> seen = new ArrayList<>();
        TrainingJob.Summary s = job.train(seen::add, () -> false);
        assertEquals(TrainingRun.StopReason.MAX_STEPS, s.reason());
        assertEquals(6, s.steps());
        assertEquals(6, seen.size());
        assertEquals(48, s.imagesSeen());
        assertEquals(48 / 240.0, s.epochs(), 1e-12);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), seen.stream().map(TrainingJob.Progress::step).toList());
        assertEquals(2e-3 / 2, seen.get(0).lr(), 1e-15, "warm-up: step 1 of 2 uses half the rate");
        assertTrue(seen.get(5).terms().keySet().containsAll(List.of("mse", "vlb")), seen.get(5).terms().toString());
        assertEquals(Duration.ZERO, seen.get(5).eta(), "ETA at the step limit");
        double meanLoss = seen.stream().mapToDouble(TrainingJob.Progress::loss).average().orElseThrow();
        assertEquals(meanLoss, s.lastWindowLoss(), 1e-12, "no complete window yet: the open one");
        assertTrue(Files.isRegularFile(ck), "checkpoint written at the end");

        Path out = dir.resolve("model");
        job.exportModel(out);
        ModelFolder.Loaded loaded = ModelFolder.load(out);
        assertInstanceOf(DiT.class, loaded.model());
        assertEquals(new DiTConfig(8, 2, 1, 16, 1, 2, 2.0, 0.1, 3, true), ((DiT) loaded.model()).config());
        Map<String, Tensor> ema = job.run().ema().averages();
        Map<String, Tensor> sd = loaded.model().stateDict();
        int differ = 0;
        for (var e : ema.entrySet()) {
            assertArrayEquals(e.getValue().data(), sd.get(e.getKey()).data(), "exported " + e.getKey() + " is the EMA");
            if (!java.util.Arrays.equals(e.getValue().data(), job.run().params().get(e.getKey()).data())) differ++;
        }
        assertTrue(differ > 0, "the EMA differs from the raw parameters after 6 steps with decay < 1");
        assertArrayEquals(((DiT) job.model()).posEmbed().data(), sd.get("pos_embed").data(), "buffer exported");

        JsonView rec = Json.read(out.resolve(TrainingJob.TRAINING_JSON));
        assertEquals(6, rec.requireLong("steps"));
        assertEquals(loaded.weightsSha256(), rec.requireString("weights_sha256"));
        assertEquals(job.model().parameterCount(), rec.requireLong("parameters"));
        assertEquals(3, rec.get("recipe").requireLong("seed"));
        assertEquals(2e-3, rec.get("recipe").requireDouble("lr"), 0);
        assertEquals(0.1, rec.get("objective").requireDouble("class_dropout_prob"), 0);
        assertEquals("max_steps", rec.requireString("stop_reason"));
        assertEquals(meanLoss, rec.get("final_loss").requireDouble("loss"), 1e-12);
        assertEquals(TrainingJob.fingerprint(data), rec.get("data").requireString("fingerprint"));

        // the exported folder samples like any model folder: a forward pass gives finite numbers of the right shape
        Tensor x = Tensor.zeros(2, 1, 8, 8);
        Tensor o = loaded.model().forward(x, new float[] {10, 900}, new int[] {0, 3});
        assertArrayEquals(new int[] {2, 2, 8, 8}, o.shape());
        for (float v : o.data()) assertTrue(Float.isFinite(v));
    }

    @Test void resumeContinuesBitForBitIncludingTheLossHistory() throws IOException {
        Dataset data = bars(120, 2);
        Path cfg = config(TINY_DIT);
        // uninterrupted: 205 steps = two complete history windows and an open one
        TrainingJob full = TrainingJob.create(cfg, data, "bars", recipe(9), new TrainingJob.Limits(205, null, null, null));
        full.train(null, () -> false);
        Path a = dir.resolve("a");
        full.exportModel(a);

        Path ck = dir.resolve("half.safetensors");
        TrainingJob first = TrainingJob.create(cfg, data, "bars", recipe(9), new TrainingJob.Limits(150, null, null, ck));
        AtomicInteger calls = new AtomicInteger();
        TrainingJob.Summary s1 = first.train(p -> calls.incrementAndGet(), () -> false);
        assertEquals(150, s1.steps());
        assertEquals(150, calls.get());
        assertEquals(TrainCheckpoint.read(ck).step(), 150);
        TrainingJob second = TrainingJob.resume(ck, data, "bars", new TrainingJob.Limits(205, null, null, ck));
        assertEquals(150, second.step());
        assertEquals(recipe(9), second.recipe());
        TrainingJob.Summary s2 = second.train(null, () -> false);
        assertEquals(55, s2.stepsThisCall());
        Path b = dir.resolve("b");
        second.exportModel(b);

        assertArrayEquals(Files.readAllBytes(a.resolve(ModelFolder.DIT_WEIGHTS)), Files.readAllBytes(b.resolve(ModelFolder.DIT_WEIGHTS)),
                "resumed run gives the same weights file, byte for byte");
        JsonView ra = Json.read(a.resolve(TrainingJob.TRAINING_JSON)), rb = Json.read(b.resolve(TrainingJob.TRAINING_JSON));
        assertEquals(ra.get("loss_history").node(), rb.get("loss_history").node());
        assertEquals(2, ra.get("loss_history").size());
        assertEquals(101, ra.get("loss_history").at(1).requireLong("from"));
        assertEquals(200, ra.get("loss_history").at(1).requireLong("to"));
        assertEquals(ra.get("final_loss").node(), rb.get("final_loss").node());
        assertTrue(ra.get("loss_history").at(1).requireDouble("loss") < ra.get("loss_history").at(0).requireDouble("loss"),
                "the loss falls on the bars problem: " + ra.get("loss_history").node());
    }

    @Test void budgetCountsResumedTimeAndCancellationCheckpoints() throws IOException {
        Dataset data = bars(60, 3);
        Path ck = dir.resolve("ck.safetensors");
        TrainingJob job = TrainingJob.create(config(TINY_DIT), data, "bars", recipe(1), new TrainingJob.Limits(0, null, Duration.ofHours(1), ck));
        AtomicInteger n = new AtomicInteger();
        TrainingJob.Summary s = job.train(p -> n.incrementAndGet(), () -> n.get() >= 3);
        assertEquals(TrainingRun.StopReason.CANCELLED, s.reason());
        assertEquals(3, TrainCheckpoint.read(ck).step(), "cancelling writes the checkpoint");
        double trained = TrainCheckpoint.read(ck).elapsedSeconds();
        assertTrue(trained > 0);

        // a total budget already used up by the first run: the resumed job stops before any step
        TrainingJob spent = TrainingJob.resume(ck, data, "bars",
                new TrainingJob.Limits(0, Duration.ofNanos((long) (trained * 1e9) - 1_000_000), null, null));
        assertEquals(Duration.ofNanos((long) (trained * 1e9)).toMillis(), spent.previousElapsed().toMillis());
        TrainingJob.Summary s2 = spent.train(null, () -> false);
        assertEquals(TrainingRun.StopReason.WALL_CLOCK, s2.reason());
        assertEquals(0, s2.stepsThisCall());
        // with room left it runs on to the step limit
        TrainingJob more = TrainingJob.resume(ck, data, "bars", new TrainingJob.Limits(5, Duration.ofHours(1), null, null));
        TrainingJob.Summary s3 = more.train(null, () -> false);
        assertEquals(TrainingRun.StopReason.MAX_STEPS, s3.reason());
        assertEquals(2, s3.stepsThisCall());
    }

    @Test void resumeRefusesOtherDataAndForeignFiles() throws IOException {
        Path ck = dir.resolve("ck.safetensors");
        TrainingJob job = TrainingJob.create(config(TINY_DIT), bars(30, 4), "bars A", recipe(1), new TrainingJob.Limits(1, null, null, ck));
        job.train(null, () -> false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TrainingJob.resume(ck, bars(30, 5), "bars B", new TrainingJob.Limits(2, null, null, null)));
        assertTrue(e.getMessage().contains("the data differs") && e.getMessage().contains("bars A") && e.getMessage().contains("bars B"), e.getMessage());

        Path weights = dir.resolve("w.safetensors");
        new io.diffquant.engine.io.SafetensorsWriter().add("x", Tensor.zeros(2)).write(weights);
        IOException io = assertThrows(IOException.class, () -> TrainingJob.resume(weights, bars(30, 4), "bars", new TrainingJob.Limits(2, null, null, null)));
        assertTrue(io.getMessage().contains("not a DiffQuant training checkpoint") && io.getMessage().contains(weights.toString()), io.getMessage());
        assertThrows(NoSuchFileException.class, () -> TrainingJob.resume(dir.resolve("nope"), bars(30, 4), "bars", new TrainingJob.Limits(2, null, null, null)));
    }

    @Test void badModelConfigsAreNamed() throws IOException {
        Dataset data = bars(10, 1);
        TrainingJob.Limits lim = new TrainingJob.Limits(1, null, null, null);
        Exception e = assertThrows(IOException.class, () -> TrainingJob.create(config("{\"input_size\": 8}"), data, "d", recipe(1), lim));
        assertTrue(e.getMessage().contains("_class_name"), e.getMessage());
        Path bad = config(TINY_DIT.replace("\"hidden_size\": 16", "\"hidden_size\": 15"));
        e = assertThrows(IllegalArgumentException.class, () -> TrainingJob.create(bad, data, "d", recipe(1), lim));
        assertTrue(e.getMessage().contains(bad.toString()) && e.getMessage().contains("hidden_size"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TrainingJob.create(config(TINY_DIT.replace("\"input_size\": 8", "\"input_size\": 16")),
                data, "d", recipe(1), lim));
        assertTrue(e.getMessage().contains("16x16"), e.getMessage());
        assertThrows(NoSuchFileException.class, () -> TrainingJob.create(dir.resolve("missing.json"), data, "d", recipe(1), lim));
        assertThrows(IllegalArgumentException.class, () -> new TrainingJob.Recipe(1, 0, 1e-3, 0, 0.9, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new TrainingJob.Recipe(1, 8, 1e-3, 0, 1.0, 0, 0));
    }

    @Test void ditInitFollowsInitializeWeights() {
        DiT m = new DiT(new DiTConfig(8, 2, 1, 32, 2, 2, 4.0, 0.1, 3, true));
        ModelInit.initialize(m, 5);
        for (Layer l : m.layers().all()) {
            String n = l.name();
            Tensor w = l.param("weight"), b = l.param("bias");
            if (b != null) for (float v : b.data()) assertEquals(0f, v, n + ".bias is zero");
            if (n.endsWith("adaLN_modulation.1") || n.equals("final_layer.linear")) {
                for (float v : w.data()) assertEquals(0f, v, n + " is zero (adaLN-Zero)");
            } else if (n.equals("blocks.0.mlp.fc1")) {
                double bound = Math.sqrt(6.0 / (32 + 128));
                assertUniform(w, bound, n);
            } else if (n.equals("x_embedder.proj")) {
                assertUniform(w, Math.sqrt(6.0 / (1 * 2 * 2 + 32)), n);
            } else if (n.equals("y_embedder.embedding_table") || n.startsWith("t_embedder.mlp.")) {
                Tensor t = n.startsWith("y_") ? l.params().values().iterator().next() : w;
                double ss = 0;
                for (float v : t.data()) ss += v * v;
                assertEquals(0.02, Math.sqrt(ss / t.size()), 0.02 * (t.size() > 1000 ? 0.1 : 0.35), n + " std");
            }
        }
        DiT again = new DiT(m.config());
        ModelInit.initialize(again, 5);
        for (var e : m.stateDict().entrySet()) assertArrayEquals(e.getValue().data(), again.stateDict().get(e.getKey()).data(), "seeded: " + e.getKey());
        DiT other = new DiT(m.config());
        ModelInit.initialize(other, 6);
        assertFalse(java.util.Arrays.equals(m.layers().get("blocks.0.attn.qkv").param("weight").data(),
                other.layers().get("blocks.0.attn.qkv").param("weight").data()), "another seed, other weights");
    }

    @Test void unetInitFollowsTorchDefaults() {
        UNet2DConfig cfg = new UNet2DConfig(8, 1, 1, false, "positional", null, 0f, true,
                List.of("DownBlock2D", "AttnDownBlock2D"), "UNetMidBlock2D", List.of("AttnUpBlock2D", "UpBlock2D"),
                List.of(8, 16), 1, 1f, 1, "conv", "conv", 0f, "silu", 4, 4, null, 1e-5f, "default", true, null, null, null);
        UNet2DModel m = new UNet2DModel(cfg);
        ModelInit.initialize(m, 1);
        for (Layer l : m.layers().all()) {
            if (l instanceof io.diffquant.engine.model.Conv2d c) {
                double bound = 1 / Math.sqrt((double) c.in() * c.kernel() * c.kernel());
                for (float v : l.param("weight").data()) assertTrue(Math.abs(v) <= bound, l.name());
                for (float v : l.param("bias").data()) assertTrue(Math.abs(v) <= bound, l.name());
            } else if (l instanceof io.diffquant.engine.model.Norm) {
                for (float v : l.param("weight").data()) assertEquals(1f, v);
                for (float v : l.param("bias").data()) assertEquals(0f, v);
            }
        }
        var conv = (io.diffquant.engine.model.Conv2d) m.layers().get("up_blocks.1.resnets.0.conv1");
        assertEquals(24, conv.in(), "16 channels from below + 8 skip channels");
        assertUniform(conv.param("weight"), 1 / Math.sqrt(24 * 9), "up conv1");
    }

    /** Max within the bound, and the standard deviation of U(-a, a), a / sqrt(3), within 10 %. */
    private static void assertUniform(Tensor w, double bound, String what) {
        double ss = 0, max = 0;
        for (float v : w.data()) {
            ss += v * v;
            max = Math.max(max, Math.abs(v));
        }
        assertTrue(max <= bound * (1 + 1e-6), what + ": max " + max + " > bound " + bound);
        assertTrue(max > bound * 0.9, what + ": max " + max + " far below bound " + bound);
        assertEquals(bound / Math.sqrt(3), Math.sqrt(ss / w.size()), 0.1 * bound / Math.sqrt(3), what + " std");
    }

    // ------------------------------------------------------------------ Fashion-MNIST adapter

    /** Writes train-{images-idx3,labels-idx1}-ubyte (uncompressed) with the given pixels and labels. */
    static void writeFashionMnist(Path dir, byte[][] images, byte[] labels) throws IOException {
        Files.createDirectories(dir);
        ByteArrayOutputStream bi = new ByteArrayOutputStream(), bl = new ByteArrayOutputStream();
        DataOutputStream di = new DataOutputStream(bi), dl = new DataOutputStream(bl);
        di.writeInt(0x00000803);
        di.writeInt(images.length);
        di.writeInt(28);
        di.writeInt(28);
        for (byte[] im : images) di.write(im);
        dl.writeInt(0x00000801);
        dl.writeInt(labels.length);
        dl.write(labels);
        Files.write(dir.resolve("train-images-idx3-ubyte"), bi.toByteArray());
        Files.write(dir.resolve("train-labels-idx1-ubyte"), bl.toByteArray());
    }

    @Test void fashionMnistDatasetScalesToMinusOneOne() throws IOException {
        byte[][] ims = new byte[3][784];
        for (int i = 0; i < 3; i++) for (int p = 0; p < 784; p++) ims[i][p] = (byte) ((p + 85 * i) % 256);
        Path d = dir.resolve("fm");
        writeFashionMnist(d, ims, new byte[] {7, 0, 9});
        FashionMnistDataset ds = FashionMnistDataset.load(d, FashionMnist.Split.TRAIN, 2);
        assertEquals(2, ds.size());
        assertEquals(1, ds.channels());
        assertEquals(28, ds.height());
        assertEquals(28, ds.width());
        assertEquals(7, ds.label(0));
        assertEquals(0, ds.label(1));
        float[] buf = new float[1 + 784];
        ds.image(1, buf, 1);
        assertEquals(-1f, buf[1 + (256 - 85)], 0f, "pixel 0 -> -1");
        assertEquals(1f, buf[1 + (255 - 85)], 0f, "pixel 255 -> 1");
        assertEquals((float) ((85 / 255f - 0.5f) / 0.5f), buf[1], 0f, "torchvision ToTensor + Normalize(0.5, 0.5) in float32");
        assertThrows(IndexOutOfBoundsException.class, () -> ds.image(2, buf, 0));

        NoSuchFileException e = assertThrows(NoSuchFileException.class,
                () -> FashionMnistDataset.load(dir.resolve("absent"), FashionMnist.Split.TRAIN, 10));
        assertTrue(e.getMessage().contains("dataset-fashion-mnist") && e.getMessage().contains("absent"), e.getMessage());
        Files.delete(d.resolve("train-labels-idx1-ubyte"));
        e = assertThrows(NoSuchFileException.class, () -> FashionMnistDataset.load(d, FashionMnist.Split.TRAIN, 10));
        assertTrue(e.getMessage().contains("train-labels-idx1-ubyte") && e.getMessage().contains("dataset-fashion-mnist"), e.getMessage());
    }
}
