package io.diffquant.engine.model.dit;

import static io.diffquant.engine.testing.Golden.maxAbsDiff;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static io.diffquant.engine.model.dit.DiTTestSupport.*;
import static org.junit.jupiter.api.Assertions.*;

/** The fused DiT block paths (MLP with native hidden activation, native attention) against the hooked, unfused ones. */
class DiTFusedPathsTest {
    /** 64 tokens x 2 images x mlp 256 = 32768 hidden activations per block: the fused MLP threshold. */
    static final DiTConfig CFG = new DiTConfig(16, 2, 3, 64, 2, 4, 4.0, 0.1, 5, true);

    @Test void hookingTheMlpOrTheProbesGivesTheSameOutputAsTheFusedBlock() {
        DiT m = randomModel(CFG, 7, 0.15);
        Random r = new Random(8);
        Tensor x = rand(r, 1.0, 2, 3, 16, 16);
        float[] t = {15, 700};
        int[] y = {1, 5};
        Tensor fused = m.forward(x, t, y);
        assertTrue(maxAbs(fused) > 0.1, "a non-trivial output");
        LayerHook noop = new LayerHook() {};
        for (int i = 0; i < CFG.depth(); i++) {
            m.layers().get("blocks." + i + ".mlp.fc1").addHook(noop);
            m.layers().get("blocks." + i + ".attn.softmax").addHook(noop);
        }
        Tensor unfused = m.forward(x, t, y);
        assertTrue(maxAbsDiff(fused, unfused) < 1e-5, "fused vs unfused: " + maxAbsDiff(fused, unfused));
    }
}
