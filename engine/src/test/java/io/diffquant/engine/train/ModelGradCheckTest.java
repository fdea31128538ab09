package io.diffquant.engine.train;

import io.diffquant.engine.diffusion.NoiseSchedule;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.Backends;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * End to end: the training loss of a tiny DiT and tiny UNets (fast and explicit paths) differentiated by the
 * Tape, against central finite differences for a few elements of every parameter tensor of every layer.
 * The models run in float32, so eps = 1e-2 and elements are compared where the gradient is not drowned in the
 * forward pass's rounding (|g| > 2e-3 of the largest gradient); the largest-|g| elements of every tensor are
 * always among the checked ones. Runs on the Java GEMM (hundreds of tiny forward passes: oneDNN's per-call
 * overhead would dominate); the rules are backend-independent.
 */
class ModelGradCheckTest {
    @BeforeEach void javaGemm() { Backends.useBlas("java"); }

    @AfterEach void restore() { Backends.useBlas("native"); }

    static void randomize(DiffusionModel m, long seed) {
        Random r = new Random(seed);
        for (Layer l : m.layers().all()) for (var e : l.params().entrySet()) {
            Tensor p = e.getValue();
            boolean norm = l instanceof Norm;
            double fanIn = p.rank() > 1 ? (double) p.size() / p.dim(0) : 1;
            for (int i = 0; i < p.size(); i++) {
                double g = r.nextGaussian();
                p.data()[i] = (float) (norm ? (e.getKey().equals("weight") ? 1 + 0.2 * g : 0.2 * g)
                        : p.rank() > 1 ? g / Math.sqrt(fanIn) : 0.2 * g);
            }
        }
    }

    static void checkModel(String name, DiffusionModel m, int numClasses, long seed) {
        int c = m.inChannels(), s = m.sampleSize(), b = 3;
        Random r = new Random(seed);
        Tensor x0 = Tensor.zeros(b, c, s, s);
        for (int i = 0; i < x0.size(); i++) x0.data()[i] = (float) Math.max(-1, Math.min(1, 0.6 * r.nextGaussian()));
        int[] labels = numClasses > 0 ? new int[] {0, numClasses - 1, 1} : null;
        DiffusionObjective obj = new DiffusionObjective(m, c, numClasses, m.learnSigma(),
                new DiffusionObjective.Config(NoiseSchedule.linear(1000), numClasses > 0 ? 0.3 : 0, 1.0));
        Objective.Batch batch = new Objective.Batch(x0, labels, new int[] {0, 1, 2});
        long rngState = TrainRng.derive(seed, 1, 2).state();
        Map<String, Tensor> params = DiffusionTrainer.trainableParameters(m);
        Gradients g;
        try (Tape tape = Tape.start(params.values())) {
            g = tape.backward(obj.loss(batch, new TrainRng(rngState)).loss());
        }
        double gmax = 0;
        for (var e : params.entrySet()) {
            assertTrue(g.has(e.getValue()), name + ": no gradient reached " + e.getKey());
            for (float v : g.raw(e.getValue())) gmax = Math.max(gmax, Math.abs(v));
        }
        double eps = 1e-2, floor = 2e-3 * gmax;
        int checked = 0;
        List<String> failures = new ArrayList<>();
        for (var e : params.entrySet()) {
            Tensor p = e.getValue();
            float[] a = g.raw(p);
            List<Integer> idx = new ArrayList<>();
            int best = 0;
            for (int i = 1; i < a.length; i++) if (Math.abs(a[i]) > Math.abs(a[best])) best = i;
            idx.add(best);
            idx.add(r.nextInt(a.length));
            for (int i : idx) {
                if (Math.abs(a[i]) < floor && i != best) continue;
                float keep = p.data()[i];
                p.data()[i] = (float) (keep + eps);
                double lp = obj.loss(batch, new TrainRng(rngState)).loss().data()[0];
                p.data()[i] = (float) (keep - eps);
                double lm = obj.loss(batch, new TrainRng(rngState)).loss().data()[0];
                p.data()[i] = keep;
                double num = (lp - lm) / (2 * eps);
                checked++;
                if (Math.abs(num - a[i]) > 3e-2 * Math.abs(num) + 5e-4 * gmax)
                    failures.add(e.getKey() + "[" + i + "]: analytic " + a[i] + " numeric " + num);
            }
        }
        assertTrue(failures.isEmpty(), name + ": " + failures.size() + " of " + checked + " checks failed (max |g| " + gmax + "):\n"
                + String.join("\n", failures));
        assertTrue(checked >= params.size(), name + ": every parameter tensor is checked at least once");
    }

    @Test void tinyDiT() {
        DiTConfig cfg = new DiTConfig(4, 2, 2, 16, 1, 2, 4.0, 0.1, 3, true);
        DiT m = new DiT(cfg);
        randomize(m, 1);
        checkModel("DiT fused", m, 3, 11);
        // the explicit paths: probes and norms hooked (attention split/scores/softmax/apply, modulate, out-of-place GELU)
        LayerHook identity = new LayerHook() {};
        for (String l : List.of("blocks.0.attn.q", "blocks.0.norm1", "blocks.0.norm2", "blocks.0.mlp.fc1", "blocks.0.attn.proj",
                "blocks.0.mlp.fc2", "final_layer.norm_final")) m.layers().get(l).addHook(identity);
        checkModel("DiT explicit", m, 3, 12);
    }

    private static UNet2DConfig unet(String scaleShift, Integer classes, int downPad, String resample) {
        return new UNet2DConfig(8, 1, 1, false, "positional", null, 0f, true,
                List.of("DownBlock2D", "AttnDownBlock2D"), "UNetMidBlock2D", List.of("AttnUpBlock2D", "UpBlock2D"),
                List.of(8, 16), 1, 1f, downPad, resample, resample, 0f, "silu", 4, 4, null, 1e-5f, scaleShift, true,
                null, classes, null);
    }

    @Test void tinyUNet() {
        UNet2DModel m = new UNet2DModel(unet("default", null, 1, "conv"));
        randomize(m, 2);
        checkModel("UNet fused", m, 0, 21);
    }

    @Test void tinyUNetExplicitPathsScaleShiftClassEmbeddingPaddingAndResnetResampling() {
        UNet2DModel m = new UNet2DModel(unet("scale_shift", 3, 0, "resnet"));
        randomize(m, 3);
        m.setFastPaths(false);
        checkModel("UNet scale-shift explicit", m, 2, 32); // labels 0..1 real, 2 = the extra row used as null class
    }
}
