package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** Random streams, batch order, checkpoint files, budgets and the loop's error reports. */
class TrainInfraTest {
    @TempDir Path dir;

    @Test void rngStreamsAreReproducibleAndWellFormed() {
        TrainRng a = TrainRng.derive(1, 2, 3), b = TrainRng.derive(1, 2, 3), c = TrainRng.derive(1, 2, 4);
        long x = a.nextLong();
        assertEquals(x, b.nextLong());
        assertNotEquals(x, c.nextLong());
        TrainRng resumed = new TrainRng(a.state());
        assertEquals(a.nextLong(), resumed.nextLong(), "a state continues the same sequence");
        // moments of 200k normals and uniform integers
        float[] g = new float[200_001];
        TrainRng r = TrainRng.derive(7, 0, 0);
        r.gaussian(g);
        double m = 0, v = 0;
        for (float f : g) m += f;
        m /= g.length;
        for (float f : g) v += (f - m) * (f - m);
        v /= g.length;
        assertEquals(0, m, 0.01);
        assertEquals(1, v, 0.01);
        int[] counts = new int[10];
        for (int i = 0; i < 100_000; i++) counts[r.nextInt(10)]++;
        for (int k : counts) assertEquals(10_000, k, 400);
        assertThrows(IllegalArgumentException.class, () -> r.nextInt(0));
    }

    @Test void batchSamplerVisitsEveryEpochAsAPermutationAndResumes() {
        BatchSampler s = new BatchSampler(5, 10);
        int[] seen = new int[10];
        for (int i = 0; i < 5; i++) for (int idx : s.next(4)) seen[idx]++; // 20 draws = 2 epochs exactly
        for (int k : seen) assertEquals(2, k);
        assertEquals(2, s.epoch());
        assertEquals(0, s.cursor());
        s.next(3);
        BatchSampler t = new BatchSampler(5, 10);
        t.seek(s.epoch(), s.cursor());
        assertArrayEquals(s.next(7), t.next(7), "seek continues the same order across the epoch boundary");
        assertThrows(IllegalArgumentException.class, () -> t.seek(0, 10));
    }

    private static Map<String, Tensor> params() {
        Map<String, Tensor> p = new LinkedHashMap<>();
        p.put("w", Tensor.of(new float[] {1, 2, 3, 4}, 2, 2));
        p.put("b", Tensor.of(new float[] {0.5f}, 1));
        return p;
    }

    /** Least squares on a fixed point: loss = mean((w x + b - target)^2). */
    private static Objective quadratic(Map<String, Tensor> p) {
        return (batch, rng) -> {
            Tensor x = Tensor.of(new float[] {1, -1}, 1, 2);
            Tensor y = Ops.linear(x, p.get("w"), null);
            Tensor pred = Ops.add(y, Tensor.concatRows(p.get("b"), p.get("b")).reshape(1, 2)); // + b on both outputs
            return Objective.StepLoss.of(Ops.mseLoss(pred, Tensor.of(new float[] {0.25f, -0.75f}, 1, 2)));
        };
    }

    private static Dataset oneImage() { return Dataset.of(Tensor.zeros(3, 1, 2, 2), null); }

    @Test void checkpointRoundTripAndDamagedFiles() throws IOException {
        Map<String, Tensor> p = params();
        TrainingRun run = TrainingRun.start(p, quadratic(p), oneImage(), TrainConfig.defaults(3, 2).withMaxSteps(4));
        run.putMetadata("config.json", "{\"a\": 1}").run(null, null);
        Path f = dir.resolve("ck.safetensors");
        run.saveCheckpoint(f);
        TrainCheckpoint ck = TrainCheckpoint.read(f);
        assertEquals(4, ck.step());
        assertEquals(3, ck.seed());
        assertEquals(2, ck.batchSize());
        assertEquals(8, ck.imagesSeen());
        assertEquals(2, ck.dataEpoch()); // 8 draws over 3 images
        assertEquals(2, ck.dataCursor());
        assertEquals(Map.of("w", 4L, "b", 4L), ck.adamSteps());
        assertEquals("{\"a\": 1}", ck.extra().get("config.json"));
        for (String k : p.keySet()) {
            assertArrayEquals(p.get(k).data(), ck.params().get(k).data());
            assertArrayEquals(run.optimizer().secondMoments().get(k).data(), ck.adamV().get(k).data());
            assertArrayEquals(run.ema().averages().get(k).data(), ck.ema().get(k).data());
        }
        assertEquals(4, ck.emaUpdates());
        // no temporary files left beside it
        try (var files = Files.list(dir)) { assertEquals(1, files.count()); }

        // a model safetensors file is not a training checkpoint
        Path other = dir.resolve("model.safetensors");
        new SafetensorsWriter().add("w", Tensor.zeros(2)).write(other);
        IOException e = assertThrows(IOException.class, () -> TrainCheckpoint.read(other));
        assertTrue(e.getMessage().contains("not a DiffQuant training checkpoint"), e.getMessage());

        // resume with another seed, batch size or model is refused with the reason
        Map<String, Tensor> q = params();
        var e1 = assertThrows(IllegalArgumentException.class,
                () -> TrainingRun.resume(f, q, quadratic(q), oneImage(), TrainConfig.defaults(4, 2)));
        assertTrue(e1.getMessage().contains("seed 3"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class,
                () -> TrainingRun.resume(f, q, quadratic(q), oneImage(), TrainConfig.defaults(3, 5)));
        assertTrue(e2.getMessage().contains("batch size 2"), e2.getMessage());
        Map<String, Tensor> r = new LinkedHashMap<>(params());
        r.put("extra", Tensor.zeros(3));
        var e3 = assertThrows(IllegalArgumentException.class,
                () -> TrainingRun.resume(f, r, quadratic(r), oneImage(), TrainConfig.defaults(3, 2)));
        assertTrue(e3.getMessage().contains("missing [extra]"), e3.getMessage());
        Map<String, Tensor> wrongShape = params();
        wrongShape.put("w", Tensor.zeros(4));
        var e4 = assertThrows(IllegalArgumentException.class,
                () -> TrainingRun.resume(f, wrongShape, quadratic(wrongShape), oneImage(), TrainConfig.defaults(3, 2)));
        assertTrue(e4.getMessage().contains("'w'") && e4.getMessage().contains("[2, 2]"), e4.getMessage());
    }

    @Test void budgetsCancellationAndTimedCheckpoints() throws IOException {
        Map<String, Tensor> p = params();
        Path f = dir.resolve("timed.safetensors");
        TrainConfig cfg = TrainConfig.defaults(1, 1).withCheckpoints(f, Duration.ofNanos(1));
        TrainingRun run = TrainingRun.start(p, quadratic(p), oneImage(), cfg);
        AtomicInteger n = new AtomicInteger();
        AtomicInteger checkpointed = new AtomicInteger();
        TrainingRun.Result res = run.run(rep -> { n.incrementAndGet(); if (rep.checkpointed()) checkpointed.incrementAndGet(); },
                () -> n.get() >= 3);
        assertEquals(TrainingRun.StopReason.CANCELLED, res.reason());
        assertEquals(3, res.steps());
        assertEquals(3, checkpointed.get(), "a 1 ns interval checkpoints after every step");
        assertEquals(3, TrainCheckpoint.read(f).step());

        TrainingRun timed = TrainingRun.start(p, quadratic(p), oneImage(), TrainConfig.defaults(1, 1).withWallClockBudget(Duration.ZERO));
        assertEquals(TrainingRun.StopReason.WALL_CLOCK, timed.run(null, null).reason());
        assertEquals(0, timed.step());

        TrainingRun limited = TrainingRun.start(p, quadratic(p), oneImage(), TrainConfig.defaults(1, 1).withMaxSteps(2));
        TrainingRun.Result r2 = limited.run(null, null);
        assertEquals(TrainingRun.StopReason.MAX_STEPS, r2.reason());
        assertEquals(2, r2.steps());
    }

    @Test void learningRateWarmupAndClipping() {
        Map<String, Tensor> p = params();
        TrainConfig cfg = TrainConfig.defaults(1, 1).withLrWarmupSteps(4).withMaxGradNorm(1e-3);
        TrainingRun run = TrainingRun.start(p, quadratic(p), oneImage(), cfg);
        double lr = cfg.adam().lr();
        for (int s = 0; s < 6; s++) {
            TrainingRun.StepReport rep = run.next();
            assertEquals(lr * Math.min(1.0, (s + 1) / 4.0), rep.lr(), 1e-18, "warm-up lr at step " + s);
            assertTrue(rep.gradNorm() > 1e-3, "the test needs gradients larger than the clip");
        }
    }

    @Test void unreachedParametersAndDivergenceAreReported() {
        Map<String, Tensor> p = params();
        p.put("unused", Tensor.zeros(2));
        TrainingRun run = TrainingRun.start(p, quadratic(p), oneImage(), TrainConfig.defaults(1, 1));
        IllegalStateException e = assertThrows(IllegalStateException.class, run::next);
        assertTrue(e.getMessage().contains("[unused]") && e.getMessage().contains("no gradient"), e.getMessage());
        TrainingRun tolerant = TrainingRun.start(p, quadratic(p), oneImage(), TrainConfig.defaults(1, 1).withRequireAllGradients(false));
        tolerant.next();
        assertArrayEquals(new float[2], p.get("unused").data());

        Map<String, Tensor> q = params();
        Objective nan = (batch, rng) -> Objective.StepLoss.of(Ops.scale(Ops.sum(q.get("w")), Float.NaN));
        TrainingRun bad = TrainingRun.start(q, nan, oneImage(), TrainConfig.defaults(1, 1));
        float[] before = q.get("w").data().clone();
        for (int i = 0; i < 10; i++) bad.next();           // skipped: the weights are untouched
        assertArrayEquals(before, q.get("w").data());
        assertEquals(10, bad.skippedSteps());
        IllegalStateException d = assertThrows(IllegalStateException.class, bad::next);
        assertTrue(d.getMessage().contains("diverged") && d.getMessage().contains("step 10")
                && d.getMessage().contains("11 steps in a row"), d.getMessage());
    }

    @Test void oneNonFiniteStepIsSkippedAndTrainingGoesOn() {
        Map<String, Tensor> q = params();
        Objective good = quadratic(q);
        int[] calls = {0};
        Objective flaky = (batch, rng) -> calls[0]++ == 1
                ? Objective.StepLoss.of(Ops.scale(Ops.sum(q.get("w")), Float.POSITIVE_INFINITY)) : good.loss(batch, rng);
        TrainingRun run = TrainingRun.start(q, flaky, oneImage(), TrainConfig.defaults(1, 1));
        run.next();
        float[] afterFirst = q.get("w").data().clone();
        TrainingRun.StepReport skipped = run.next();
        assertArrayEquals(afterFirst, q.get("w").data(), "the non-finite step must not change the weights");
        assertEquals(2, skipped.step());
        assertEquals(1, run.skippedSteps());
        run.next();
        for (float v : q.get("w").data()) assertTrue(Float.isFinite(v));
        assertFalse(java.util.Arrays.equals(afterFirst, q.get("w").data()), "training continues after the skipped step");
    }

    @Test void diffusionObjectiveChecksItsInputs() {
        TinyDenoiser m = new TinyDenoiser(1, 4, 3, false, 4, 1);
        Dataset unlabelled = Dataset.of(Tensor.zeros(4, 1, 4, 4), null);
        TrainingRun run = DiffusionTrainer.start(m, unlabelled, TrainConfig.defaults(1, 2), DiffusionObjective.Config.dit());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, run::next);
        assertTrue(e.getMessage().contains("no labels"), e.getMessage());
        Dataset wrongSize = Dataset.of(Tensor.zeros(4, 1, 5, 5), new int[4]);
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class,
                () -> DiffusionTrainer.start(m, wrongSize, TrainConfig.defaults(1, 2), DiffusionObjective.Config.dit()));
        assertTrue(e2.getMessage().contains("1x5x5") && e2.getMessage().contains("1x4x4"), e2.getMessage());
        Dataset badLabel = Dataset.of(Tensor.zeros(4, 1, 4, 4), new int[] {0, 1, 2, 3});
        TrainingRun run2 = DiffusionTrainer.start(m, badLabel, TrainConfig.defaults(1, 4), DiffusionObjective.Config.dit());
        IllegalArgumentException e3 = assertThrows(IllegalArgumentException.class, run2::next);
        assertTrue(e3.getMessage().contains("label 3"), e3.getMessage());
    }

    @Test void labelDropoutUsesTheNullClass() {
        // a denoiser that records the labels it is given
        int[][] seen = new int[1][];
        io.diffquant.engine.model.Denoiser spy = (x, t, y) -> {
            seen[0] = y.clone();
            return Ops.scale(x, 1f);
        };
        Tensor imgs = Tensor.zeros(1000, 1, 1, 1);
        int[] labels = new int[1000];
        Arrays.fill(labels, 2);
        DiffusionObjective o = new DiffusionObjective(spy, 1, 3, false, new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0.25, 1));
        int[] idx = new int[1000];
        o.loss(new Objective.Batch(imgs, labels, idx), TrainRng.derive(1, 2, 3));
        int nulls = 0;
        for (int y : seen[0]) {
            assertTrue(y == 2 || y == 3, "label " + y);
            if (y == 3) nulls++;
        }
        assertEquals(250, nulls, 45, "about 25 % of the labels become the null class");
    }

    @Test void classifierObjectiveFlipsAndScores() {
        int b = 200;
        Tensor imgs = Tensor.zeros(b, 2, 2, 3);
        for (int i = 0; i < imgs.size(); i++) imgs.data()[i] = i;
        int[] labels = new int[b];
        Tensor[] seen = new Tensor[1];
        ClassifierObjective o = new ClassifierObjective(x -> {
            seen[0] = x;
            Tensor z = Tensor.zeros(x.dim(0), 3);
            for (int i = 0; i < x.dim(0); i++) z.data()[i * 3 + (i % 2 == 0 ? 0 : 1)] = 5f; // even samples right
            return z;
        }, 3, true);
        Objective.StepLoss sl = o.loss(new Objective.Batch(imgs, labels, new int[b]), TrainRng.derive(1, 1, 1));
        assertEquals(0.5, sl.terms().get("accuracy"), 1e-12);
        double ce = 0.5 * (Math.log(2 + Math.exp(5)) - 5) + 0.5 * (Math.log(2 + Math.exp(5)) - 0);
        assertEquals(ce, sl.loss().data()[0], 1e-5);
        int flipped = 0;
        for (int i = 0; i < b; i++) {
            boolean same = true, mirror = true;
            for (int p = 0; p < 2; p++) for (int r = 0; r < 2; r++) for (int c = 0; c < 3; c++) {
                float v = seen[0].get(i, p, r, c);
                same &= v == imgs.get(i, p, r, c);
                mirror &= v == imgs.get(i, p, r, 2 - c);
            }
            assertTrue(same || mirror, "sample " + i + " is the image or its mirror");
            if (!same) flipped++;
        }
        assertEquals(100, flipped, 25, "about half the images are flipped");
        assertEquals(0f, imgs.get(0, 0, 0, 0), "the batch itself is not modified");
    }
}
