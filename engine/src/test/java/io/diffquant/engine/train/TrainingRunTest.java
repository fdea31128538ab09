package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The training loop: exact resume, learning on a tiny problem, budgets, checkpoints and bad input. */
class TrainingRunTest {
    @TempDir Path dir;

    private static TrainConfig config(long seed) {
        return TrainConfig.defaults(seed, 8).withAdam(new AdamW.Config(3e-3, 0.9, 0.999, 1e-8, 0.01))
                .withEma(new Ema.Config(0.99, true));
    }

    private static void assertSameState(Map<String, Tensor> a, Map<String, Tensor> b, String what) {
        assertEquals(a.keySet(), b.keySet(), what + " names");
        for (String k : a.keySet()) assertArrayEquals(a.get(k).data(), b.get(k).data(), what + " " + k);
    }

    @Test void resumeFromCheckpointIsBitwiseIdentical() throws IOException {
        for (boolean learnSigma : new boolean[] {false, true}) {
            Dataset data = TinyDenoiser.blobs(20, 1, 6, 3, 1);
            DiffusionObjective.Config obj = new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0.2, 1.0);
            int k = 10;
            TinyDenoiser m1 = new TinyDenoiser(1, 6, 3, learnSigma, 8, 42);
            TrainingRun full = DiffusionTrainer.start(m1, data, config(7).withMaxSteps(k), obj);
            List<Double> lossesFull = new ArrayList<>();
            full.run(r -> lossesFull.add(r.loss()), () -> false);
            assertEquals(k, full.step());

            TinyDenoiser m2 = new TinyDenoiser(1, 6, 3, learnSigma, 8, 42);
            TrainingRun half = DiffusionTrainer.start(m2, data, config(7).withMaxSteps(k / 2), obj);
            List<Double> losses = new ArrayList<>();
            half.run(r -> losses.add(r.loss()), () -> false);
            Path ck = dir.resolve("run-" + learnSigma + ".safetensors");
            half.putMetadata("note", "first half").saveCheckpoint(ck);

            // a fresh model with different initial weights: everything must come from the checkpoint
            TinyDenoiser m3 = new TinyDenoiser(1, 6, 3, learnSigma, 8, 999);
            TrainingRun rest = DiffusionTrainer.resume(ck, m3, data, config(7).withMaxSteps(k), obj);
            assertEquals(k / 2, rest.step());
            assertEquals("first half", rest.metadata().get("note"));
            rest.run(r -> losses.add(r.loss()), () -> false);

            assertEquals(lossesFull, losses, "per-step losses (learnSigma " + learnSigma + ")");
            assertSameState(full.params(), rest.params(), "parameter");
            assertSameState(full.optimizer().firstMoments(), rest.optimizer().firstMoments(), "adam m");
            assertSameState(full.optimizer().secondMoments(), rest.optimizer().secondMoments(), "adam v");
            assertSameState(full.ema().averages(), rest.ema().averages(), "ema");
            assertEquals(full.imagesSeen(), rest.imagesSeen());
            // and the EMA differs from the parameters (it was really averaged)
            String any = full.params().keySet().iterator().next();
            assertFalse(java.util.Arrays.equals(full.params().get(any).data(), full.ema().averages().get(any).data()));
        }
    }

    @Test void tinyDenoiserLearns() throws IOException {
        Dataset data = TinyDenoiser.blobs(64, 1, 6, 4, 3);
        TinyDenoiser m = new TinyDenoiser(1, 6, 4, false, 16, 5);
        // 100 steps of batch 16 on 64 synthetic 6x6 images, uniform timesteps over T = 1000
        TrainConfig cfg = TrainConfig.defaults(11, 16).withAdam(new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0)).withEma(null).withMaxSteps(100);
        TrainingRun run = DiffusionTrainer.start(m, data, cfg, new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0.1, 1.0));
        List<Double> losses = new ArrayList<>();
        long t0 = System.nanoTime();
        run.run(r -> losses.add(r.loss()), null);
        double first = mean(losses.subList(0, 10)), last = mean(losses.subList(losses.size() - 20, losses.size()));
        assertTrue(last < 0.5 * first, "loss should fall below half: first " + first + " last " + last);
        assertTrue((System.nanoTime() - t0) < 20e9, "learning test must stay fast");
    }

    private static double mean(List<Double> l) { return l.stream().mapToDouble(Double::doubleValue).average().orElseThrow(); }
}
