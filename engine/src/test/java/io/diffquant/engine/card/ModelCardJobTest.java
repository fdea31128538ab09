package io.diffquant.engine.card;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.metrics.FmnistMetrics;
import io.diffquant.engine.metrics.MetricsTable;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.TrainingJob;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** The model-card job on tiny random 28x28x1 models: files, numbers against recomputation, grid layout, CFG rule, reproduction checks, atomic publishing. */
class ModelCardJobTest {
    @TempDir Path dir;
    static FmnistMetrics metrics;

    @BeforeAll static void loadMetrics() throws IOException { metrics = FmnistMetrics.loadDefault(); }

    static void randomize(DiffusionModel m, long seed, double std) {
        Random r = new Random(seed);
        for (Tensor t : m.stateDict().values()) {
            float[] d = t.data();
            for (int i = 0; i < d.length; i++) d[i] = (float) (std * r.nextGaussian());
        }
    }

    /** A class-conditional DiT for [N, 1, 28, 28] (patch 4, width 32, depth 1, learned sigma) with small random weights. */
    static Path tinyDit(Path parent, String name) throws IOException {
        DiTConfig cfg = new DiTConfig(28, 4, 1, 32, 1, 2, 2.0, 0.1, 10, true);
        DiT m = new DiT(cfg);
        randomize(m, 42, 0.05);
        Path folder = parent.resolve(name);
        ModelFolder.save(m, Json.parse(cfg.toJson(), "tiny dit").node(), folder, null);
        return folder;
    }

    /** An unconditional UNet2DModel for [N, 1, 28, 28]: channels [8, 8], one attention level, no training record. */
    static Path tinyUnet(Path parent) throws IOException {
        Path folder = parent.resolve("tiny-unet");
        Files.createDirectories(folder);
        String cfg = """
                {"_class_name": "UNet2DModel", "sample_size": 28, "in_channels": 1, "out_channels": 1,
                 "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
                 "block_out_channels": [8, 8], "layers_per_block": 1, "attention_head_dim": 4, "norm_num_groups": 4}
                """;
        Files.writeString(folder.resolve(ModelFolder.CONFIG), cfg);
        DiffusionModel m = ModelFolder.create(folder);
        randomize(m, 7, 0.1);
        ModelFolder.save(m, Json.parse(cfg, "tiny unet").node(), folder, null);
        return folder;
    }

    /** A training record like TrainingJob's for the weights in {@code folder}. */
    static void writeTrainingRecord(Path folder, String sha) throws IOException {
        ObjectNode o = (ObjectNode) Json.parse("""
                {"format": "diffquant-training-record", "version": 1, "architecture": "DiT", "weights": "model.safetensors",
                 "weights_are": "EMA",
                 "recipe": {"seed": 3, "batch_size": 16, "lr": 3.0E-4, "weight_decay": 0.0, "adam_betas": "0.9,0.999", "adam_eps": 1.0E-8,
                            "ema_decay": 0.999, "ema_warmup": true, "warmup_steps": 200, "max_grad_norm": 1.0},
                 "objective": {"prediction": "epsilon", "loss": "mse + vlb", "schedule": "linear", "timesteps": 1000,
                               "class_dropout_prob": 0.1, "vlb_weight": 1.0},
                 "data": {"description": "Fashion-MNIST train, 60000 images", "images": 60000, "fingerprint": "0123456789abcdef"},
                 "steps": 250, "images_seen": 4000, "epochs": 0.0667, "stop_reason": "wall_clock", "wall_seconds": 123.4,
                 "threads": 1, "cores_visible": 2,
                 "final_loss": {"steps": "201-250", "loss": 0.25, "mse": 0.24, "vlb": 0.01},
                 "loss_history": [{"from": 1, "to": 100, "loss": 0.8, "mse": 0.79, "vlb": 0.01},
                                  {"from": 101, "to": 200, "loss": 0.3, "mse": 0.29, "vlb": 0.01}]}
                """, "training").node();
        o.put("weights_sha256", sha);
        Json.write(folder.resolve(TrainingJob.TRAINING_JSON), o);
    }

    static Path realData() { return new FashionMnist().isAvailable() ? FashionMnist.DEFAULT_DIR : null; }

    static ModelCardJob.Settings small(String name, List<Double> cfgs, ReproductionSample repro) {
        return new ModelCardJob.Settings(name, 20, 3, 7, 8, cfgs, 10, repro, 4, 2, realData(), "shared machine", true);
    }

    private List<String> leftovers() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.contains(".tmp-") || n.contains(".old-")).toList();
        }
    }

    @Test void ditCardHoldsEverythingAndItsNumbersAreThoseOfTheImages() throws IOException {
        Path model = tinyDit(dir, "model-in");
        String sha = ModelFolder.sha256(model.resolve(ModelFolder.DIT_WEIGHTS));
        writeTrainingRecord(model, sha);
        Path out = dir.resolve("tiny-dit");
        List<String> lines = new ArrayList<>();
        ModelCardJob.Result res = ModelCardJob.run(model, out, metrics, null,
                small("tiny-dit", List.of(1.5, 3.0), new ReproductionSample(4, 2, 5, 1)), lines::add);
        for (String f : List.of(ModelCardJob.CARD, ModelCardJob.METRICS, ModelCardJob.GRID, ReproductionSample.FILE, ModelFolder.CONFIG,
                ModelFolder.DIT_WEIGHTS, TrainingJob.TRAINING_JSON)) assertTrue(Files.isRegularFile(out.resolve(f)), f + " missing");
        assertEquals(List.of(), leftovers(), "no temporary folders left");
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("CFG scale chosen")), lines.toString());

        JsonView rec = ModelCardJob.readRecord(out);
        assertEquals(sha, rec.requireString("weights_sha256"));
        DiT m = (DiT) ModelFolder.load(out).model();
        assertEquals(m.parameterCount(), rec.requireLong("parameters"));
        long groups = 0;
        for (JsonView g : rec.get("parameter_groups").elements()) groups += g.requireLong("values");
        assertEquals(m.parameterCount(), groups, "the module table adds up to the parameter count");

        // the CFG rule applied to the recorded sweep gives the recorded choice
        List<ModelCardJob.SweepPoint> pts = new ArrayList<>();
        for (JsonView p : rec.get("cfg_sweep").get("points").elements()) pts.add(new ModelCardJob.SweepPoint(p.requireDouble("cfg"),
                p.requireDouble(MetricsTable.FID_FMNIST), p.requireDouble(MetricsTable.SFID_FMNIST), p.requireDouble(MetricsTable.IS_FMNIST),
                p.requireDouble(MetricsTable.CLASS_ACCURACY)));
        assertEquals(2, pts.size());
        double cfg = rec.get("sampling").requireDouble("cfg");
        assertEquals(ModelCardJob.chooseCfg(pts).cfg(), cfg);

        // the recorded evaluation is the metrics of the images these settings sample (recomputed here): the sweep's 10
        // images at the chosen scale (batches 8 + 2), then images 10..19 (batches 8 + 2), bit for bit
        int[] y = FmnistSampling.cycleLabels(20, 10);
        var st = new FmnistSampling.Settings(3, cfg, 7, 8, NoiseSchedule.linear(1000));
        Tensor raw = Tensor.concatRows(FmnistSampling.sample(m, 10, 0, java.util.Arrays.copyOfRange(y, 0, 10), st, null),
                FmnistSampling.sample(m, 10, 10, java.util.Arrays.copyOfRange(y, 10, 20), st, null));
        assertEquals(10, rec.get("evaluation").requireInt("reused_sweep_images"));
        Tensor img = FmnistSampling.clampUnit(raw);
        MetricsTable t = metrics.evaluate(img, y, null);
        JsonView ev = rec.get("evaluation");
        for (String k : List.of(MetricsTable.FID_FMNIST, MetricsTable.SFID_FMNIST, MetricsTable.IS_FMNIST, MetricsTable.CLASS_ACCURACY))
            assertEquals(t.row(k).orElseThrow().value(), ev.requireDouble(k), 1e-9, k);
        int[] pred = metrics.classifier().features(img).predictions();
        double[] pc = ev.requireDoubleArray("per_class_accuracy");
        for (int c = 0; c < 10; c++) assertEquals(100.0 * ((pred[c] == c ? 1 : 0) + (pred[c + 10] == c ? 1 : 0)) / 2, pc[c], 1e-9, "class " + c);

        // grid: one row per class, column j of row c is evaluation image c + 10 j, each pixel drawn 2x2
        BufferedImage png = ImageIO.read(out.resolve(ModelCardJob.GRID).toFile());
        int k = ModelCardJob.GRID_SCALE, cols = 2;
        assertEquals((cols * 30 + 2) * k, png.getWidth());
        assertEquals((10 * 30 + 2) * k, png.getHeight());
        for (int r = 0; r < 10; r++) for (int j = 0; j < cols; j++) for (int[] yx : new int[][] {{0, 0}, {13, 17}, {27, 27}, {5, 20}}) {
            int want = ImageGrid.toByte(img.data()[(r + 10 * j) * 784 + yx[0] * 28 + yx[1]]);
            int px = png.getRGB((2 + j * 30 + yx[1]) * k + 1, (2 + r * 30 + yx[0]) * k + 1) & 0xFF;
            assertEquals(want, px, "grid row " + r + " col " + j + " pixel " + yx[0] + "," + yx[1]);
        }

        // reproduction sample: stored images are what the spec samples now, the record checks against itself
        ReproductionSample.Recorded rr = ReproductionSample.Recorded.fromJson(rec.get("reproduction"));
        assertEquals(new ReproductionSample(4, 2, 5, cfg), rr.spec(), "the reproduction sample uses the chosen CFG");
        Tensor again = rr.spec().generate(m, rr.noiseSchedule(), null);
        Tensor stored = rr.spec().readImages(out.resolve(ReproductionSample.FILE));
        assertArrayEquals(again.data(), stored.data());
        ReproductionSample.Check c = ReproductionSample.check(rr, again, stored, ReproductionSample.measure(metrics, again, rr.spec().labels(m)));
        assertTrue(c.passed(), c.failures());
        assertTrue(c.sameHash());

        // the card states the numbers of the record and is re-rendered identically from it
        String card = Files.readString(out.resolve(ModelCardJob.CARD));
        assertTrue(card.contains(sha), "weights sha256 in the card");
        assertTrue(card.contains(String.format(java.util.Locale.ROOT, "**%.4f**", ev.requireDouble(MetricsTable.FID_FMNIST))), card);
        assertTrue(card.contains("NOT met"), "random weights miss the 85 % accuracy bar and the card says so");
        assertTrue(card.contains("shared machine"), "training note");
        assertTrue(card.contains("stopped by the wall-clock budget"), card);
        assertEquals(card, ModelCardText.render(rec));
        Files.writeString(out.resolve(ModelCardJob.CARD), "stale");
        ModelCardJob.rerender(out, null);
        assertEquals(card, Files.readString(out.resolve(ModelCardJob.CARD)));
        assertTrue(res.timings().stream().anyMatch(x -> x.phase().equals("evaluation")));
    }

    @Test void unconditionalUnetCardAndAtomicReplacement() throws IOException {
        Path model = tinyUnet(dir);
        Path out = dir.resolve("tiny-unet-card");
        ModelCardJob.Settings s = new ModelCardJob.Settings("tiny-unet", 12, 2, 1, 12, List.of(1.5, 3.0), 10,
                new ReproductionSample(3, 2, 9, 1), 0, 2, null, null, true);
        ModelCardJob.run(model, out, metrics, null, s, null);
        JsonView rec = ModelCardJob.readRecord(out);
        assertEquals(1.0, rec.get("sampling").requireDouble("cfg"), "no guidance for an unconditional model");
        assertFalse(rec.has("cfg_sweep"));
        assertFalse(rec.get("evaluation").has(MetricsTable.CLASS_ACCURACY));
        assertFalse(rec.has("benchmark"), "--bench-count 0");
        assertEquals(1, rec.get("grid").requireInt("rows"));
        assertEquals(10, rec.get("grid").requireInt("cols"));
        String card = Files.readString(out.resolve(ModelCardJob.CARD));
        assertTrue(card.contains("unconditional UNet") && card.contains("Not recorded (the model folder has no training.json)"), card);
        assertFalse(card.contains("class accuracy"), card);
        String created = rec.requireString("created");

        // a second run replaces the folder as a whole
        Files.writeString(out.resolve(TrainingJob.TRAINING_JSON), "{}");   // a card file that the new run does not write
        ModelCardJob.run(model, out, metrics, null, s, null);
        assertFalse(Files.exists(out.resolve(TrainingJob.TRAINING_JSON)), "the old folder was replaced, not merged");
        assertNotEquals(created, ModelCardJob.readRecord(out).requireString("created"));
        assertEquals(List.of(), leftovers());

        // refusals: a folder with foreign files, the model folder itself
        Files.writeString(out.resolve("notes.txt"), "mine");
        IOException e = assertThrows(IOException.class, () -> ModelCardJob.run(model, out, metrics, null, s, null));
        assertTrue(e.getMessage().contains("notes.txt"), e.getMessage());
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> ModelCardJob.run(model, model, metrics, null, s, null));
        assertTrue(e2.getMessage().contains("must not be"), e2.getMessage());
        assertEquals(List.of(), leftovers());
    }

    @Test void aTrainingRecordOfOtherWeightsIsRefused() throws IOException {
        Path model = tinyDit(dir, "m");
        writeTrainingRecord(model, "0".repeat(64));
        IOException e = assertThrows(IOException.class, () -> ModelCardJob.run(model, dir.resolve("card"), metrics, null,
                small("m", List.of(2.0), ReproductionSample.defaults(1)), null));
        assertTrue(e.getMessage().contains("training.json") && e.getMessage().contains("weights_sha256"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("card")));
    }

    @Test void cfgRuleTakesTheLowestFidAmongScalesThatMeetTheAccuracyBar() {
        var a = new ModelCardJob.SweepPoint(1.5, 10, 0, 0, 80);
        var b = new ModelCardJob.SweepPoint(3, 14, 0, 0, 90);
        var c = new ModelCardJob.SweepPoint(4, 12, 0, 0, 95);
        assertEquals(4, ModelCardJob.chooseCfg(List.of(a, b, c)).cfg(), "1.5 has the lowest FID but misses the bar");
        var d = new ModelCardJob.SweepPoint(5, 20, 0, 0, 95);
        assertEquals(4, ModelCardJob.chooseCfg(List.of(a, d, c)).cfg());
        var e = new ModelCardJob.SweepPoint(2, 30, 0, 0, 70);
        assertEquals(1.5, ModelCardJob.chooseCfg(List.of(e, a)).cfg(), "none meets the bar: the highest accuracy");
        assertThrows(IllegalArgumentException.class, () -> ModelCardJob.chooseCfg(List.of()));
    }

    @Test void reproductionCheckCatchesChangedImagesAndMetrics() {
        Random r = new Random(3);
        float[] d = new float[4 * 784];
        for (int i = 0; i < d.length; i++) d[i] = (float) Math.tanh(r.nextGaussian());
        Tensor x = Tensor.of(d, 4, 1, 28, 28);
        var m = new ReproductionSample.Measured(100, 50, 2, 50);
        var rec = new ReproductionSample.Recorded(new ReproductionSample(4, 20, 1, 3), "linear", 1000, ReproductionSample.imagesSha256(x), m,
                ReproductionSample.Tolerances.DEFAULT);
        assertTrue(ReproductionSample.check(rec, x, x.copy(), m).passed());
        assertTrue(ReproductionSample.check(rec, x, x.copy(), m).sameHash());

        // float noise: 1e-5 everywhere is ~106 dB, passes; a 0.1 change in one pixel is ~55 dB for that image, fails
        Tensor noisy = x.copy();
        for (int i = 0; i < noisy.size(); i++) noisy.data()[i] += 1e-5f;
        ReproductionSample.Check ok = ReproductionSample.check(rec, noisy, x, m);
        assertTrue(ok.passed(), ok.failures());
        assertFalse(ok.sameHash());
        Tensor changed = x.copy();
        changed.data()[3 * 784 + 400] += 0.1f;
        ReproductionSample.Check bad = ReproductionSample.check(rec, changed, x, m);
        assertFalse(bad.passed());
        assertTrue(bad.failures().contains("PSNR"), bad.failures());
        assertEquals(10 * Math.log10(4 / (0.1 * 0.1 / 784)), bad.minPsnrDb(), 0.01);

        // metrics: 1 % relative for FID/sFID/IS, one image (25 points of 4 images) for accuracy
        assertTrue(ReproductionSample.check(rec, x, x, new ReproductionSample.Measured(100.9, 50.4, 2.009, 75)).passed());
        String f = ReproductionSample.check(rec, x, x, new ReproductionSample.Measured(101.1, 50, 2, 100)).failures();
        assertTrue(f.contains(MetricsTable.FID_FMNIST) && f.contains(MetricsTable.CLASS_ACCURACY) && !f.contains(MetricsTable.SFID_FMNIST), f);
    }

    @Test void samplingDoesNotDependOnTheBatchSplit() throws IOException {
        DiT m = (DiT) ModelFolder.load(tinyDit(dir, "b")).model();
        int[] y = FmnistSampling.cycleLabels(6, 10);
        var s = new FmnistSampling.Settings(3, 2.0, 11, 6, NoiseSchedule.linear(1000));
        Tensor one = FmnistSampling.sample(m, 6, 0, y, s, null);
        Tensor split = FmnistSampling.sample(m, 6, 0, y, s.withBatch(4), null);
        float max = 0;
        for (int i = 0; i < one.size(); i++) max = Math.max(max, Math.abs(one.data()[i] - split.data()[i]));
        assertTrue(max < 1e-4, "batch 6 vs 4+2: max difference " + max);
        Tensor other = FmnistSampling.sample(m, 6, 0, y, s.withSeed(12), null);
        float diff = 0;
        for (int i = 0; i < one.size(); i++) diff = Math.max(diff, Math.abs(one.data()[i] - other.data()[i]));
        assertTrue(diff > 0.1, "another seed gives other images");
        assertEquals("ddim50", FmnistSampling.respacing(1000, 50));
        assertEquals("ddim30", FmnistSampling.respacing(1000, 30), "ADM finds stride 34");
        assertEquals("999", FmnistSampling.respacing(1000, 999), "no stride gives 999 steps: sections");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FmnistSampling.sample(m, 6, 0, null, s, null));
        assertTrue(e.getMessage().contains("labels"), e.getMessage());
    }
}
