package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.Backends;
import io.diffquant.engine.tensor.Ops;
import org.junit.jupiter.api.AfterEach;
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

    @AfterEach void restore() { Backends.useBlas("native"); }

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

    @Test void tinyDiTLearnsAndResumesExactly() throws IOException {
        // Java GEMM: these GEMMs are tiny, oneDNN's per-call threading overhead would dominate on a busy machine
        Backends.useBlas("java");
        // class-conditional DiT (hidden 32, depth 2, 4x4 images, patch 2, learned sigma) on 4 synthetic classes
        Dataset data = TinyDenoiser.blobs(64, 1, 4, 4, 3);
        DiTConfig dc = new DiTConfig(4, 2, 1, 32, 2, 2, 4.0, 0.1, 4, true);
        DiffusionObjective.Config obj = new DiffusionObjective.Config(NoiseSchedule.linear(1000), 0.1, 1.0);
        TrainConfig cfg = TrainConfig.defaults(11, 16).withAdam(new AdamW.Config(2e-3, 0.9, 0.999, 1e-8, 0)).withMaxSteps(200);
        DiT m = new DiT(dc);
        ModelGradCheckTest.randomize(m, 5);
        TrainingRun run = DiffusionTrainer.start(m, data, cfg, obj);
        List<Double> mse = new ArrayList<>();
        long t0 = System.nanoTime();
        run.run(r -> mse.add(r.terms().get("mse")), null);
        double first = mean(mse.subList(0, 10)), last = mean(mse.subList(mse.size() - 20, mse.size()));
        assertTrue(last < 0.5 * first, "epsilon MSE should fall below half: first " + first + " last " + last);
        assertTrue(System.nanoTime() - t0 < 30e9, "learning test must stay fast");

        // the same run split in two with a checkpoint in between ends bit for bit in the same state
        DiT a = new DiT(dc), b = new DiT(dc);
        ModelGradCheckTest.randomize(a, 5);
        ModelGradCheckTest.randomize(b, 6);
        TrainingRun fullRun = DiffusionTrainer.start(a, data, cfg.withMaxSteps(6), obj);
        fullRun.run(null, null);
        DiT c = new DiT(dc);
        ModelGradCheckTest.randomize(c, 5);
        Path ck = dir.resolve("dit.safetensors");
        DiffusionTrainer.start(c, data, cfg.withMaxSteps(3).withCheckpoints(ck, null), obj).run(null, null);
        TrainingRun rest = DiffusionTrainer.resume(ck, b, data, cfg.withMaxSteps(6), obj);
        rest.run(null, null);
        assertSameState(fullRun.params(), rest.params(), "DiT parameter");
        assertSameState(fullRun.ema().averages(), rest.ema().averages(), "DiT ema");
        assertEquals("DiT", rest.metadata().get("architecture"));
    }

    @Test void smallCnnClassifierTrains() throws IOException {
        Backends.useBlas("java");
        Dataset data = TinyDenoiser.blobs(64, 1, 6, 4, 9);
        Conv2d c1 = new Conv2d("c1", 1, 8, 3, 1, 1, true), c2 = new Conv2d("c2", 8, 8, 3, 1, 1, true);
        Linear fc = new Linear("fc", 72, 4, true);
        Map<String, Tensor> params = new java.util.LinkedHashMap<>();
        java.util.Random r = new java.util.Random(4);
        for (Layer l : List.<Layer>of(c1, c2, fc)) for (var e : l.params().entrySet()) {
            Tensor p = e.getValue();
            double fanIn = p.rank() > 1 ? (double) p.size() / p.dim(0) : 4;
            for (int i = 0; i < p.size(); i++) p.data()[i] = (float) (r.nextGaussian() / Math.sqrt(fanIn));
            params.put(l.qualified(e.getKey()), p);
        }
        ForwardContext ctx = ForwardContext.NONE;
        ClassifierObjective obj = new ClassifierObjective(x -> {
            Tensor h = Ops.maxPool2x(Ops.relu(c1.forward(x, ctx)));              // [B, 8, 3, 3]
            h = Ops.relu(c2.forward(h, ctx));
            return fc.forward(h.reshape(x.dim(0), 72), ctx);                     // flatten: a view
        }, 4, false); // no flips: the classes are image quadrants
        TrainingRun run = TrainingRun.start(params, obj, data,
                TrainConfig.defaults(3, 16).withAdam(new AdamW.Config(1e-2, 0.9, 0.999, 1e-8, 0)).withEma(null).withMaxSteps(80));
        List<Double> ce = new ArrayList<>(), acc = new ArrayList<>();
        run.run(rep -> { ce.add(rep.loss()); acc.add(rep.terms().get("accuracy")); }, null);
        double first = mean(ce.subList(0, 5)), last = mean(ce.subList(ce.size() - 10, ce.size()));
        assertTrue(last < 0.3 * first, "cross-entropy should fall: first " + first + " last " + last);
        assertTrue(mean(acc.subList(acc.size() - 10, acc.size())) > 0.9, "accuracy " + acc.subList(acc.size() - 10, acc.size()));
    }

    private static double mean(List<Double> l) { return l.stream().mapToDouble(Double::doubleValue).average().orElseThrow(); }
}
