package io.diffquant.engine.backend.cpu;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerHook;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fused DiT forward of the cpu-int8 backend against the per-layer hook path it replaces (the model's own forward
 * with the same int8 hooks installed). They must be bit-identical: the same kernels in the same order, only without
 * copies. Blocks with other hooks or fake-quantized layers must fall back to the model's block.
 */
class Int8DiTForwardTest {
    static DiTConfig cfg() { return new DiTConfig(8, 2, 4, 64, 3, 4, 4.0, 0.1, 10, true); }

    static Tensor input(long seed) { return QuantTestSupport.rand(new Random(seed), 1.0, 2, 4, 8, 8); }

    static final float[] T = {999f, 37f};
    static final int[] Y = {3, 10};      // 10 = the null class

    @Test void fusedBlocksEqualTheHookPathBitwise() {
        DiT m = QuantTestSupport.randomDiT(cfg(), 11, 0.08);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Tensor x = input(1);
        try (CpuInt8Backend.Prepared p = (CpuInt8Backend.Prepared) new CpuInt8Backend().prepare(m, q)) {
            assertEquals(3, p.fusedBlocks());
            Tensor fused = p.forward(x, T, Y);
            Tensor hooked = m.forward(x, T, Y);          // DiT.block through Layer.forward and the same hooks
            assertArrayEquals(hooked.data(), fused.data());
            assertTrue(fused.allFinite());
            // and the fused pass changes nothing it reads: a second call gives the same
            assertArrayEquals(fused.data(), p.forward(x, T, Y).data());
        }
        q.detach();
    }

    @Test void aBlockWithAnotherHookRunsThroughTheModelAndTheHookSeesIt() {
        DiT m = QuantTestSupport.randomDiT(cfg(), 12, 0.08);
        QuantizedModel q = Int8Specs.attach(m, 8);
        Tensor x = input(2);
        AtomicInteger seen = new AtomicInteger();
        LayerHook observer = new LayerHook() {
            @Override public Tensor input(Layer layer, Tensor in, ForwardContext ctx) {
                seen.incrementAndGet();
                return in;
            }
        };
        LayerHook probe = new LayerHook() { };
        try (CpuInt8Backend.Prepared p = (CpuInt8Backend.Prepared) new CpuInt8Backend().prepare(m, q)) {
            Tensor before = p.forward(x, T, Y);
            m.layers().get("blocks.1.mlp.fc1").addHook(observer);
            assertEquals(2, p.fusedBlocks());
            Tensor withObserver = p.forward(x, T, Y);
            assertEquals(1, seen.get(), "the observer on blocks.1.mlp.fc1 saw its input once");
            assertArrayEquals(before.data(), withObserver.data());
            m.layers().get("blocks.1.mlp.fc1").removeHook(observer);
            // an (identity) probe hook switches the block to the model's explicit attention
            m.layers().get("blocks.2.attn.softmax").addHook(probe);
            assertEquals(2, p.fusedBlocks());
            Tensor withProbe = p.forward(x, T, Y);
            assertArrayEquals(m.forward(x, T, Y).data(), withProbe.data());
            m.layers().get("blocks.2.attn.softmax").removeHook(probe);
            assertEquals(3, p.fusedBlocks());
        }
        q.detach();
    }

    @Test void aBlockWithAFakeQuantizedLinearIsNotFused() {
        DiT m = QuantTestSupport.randomDiT(cfg(), 13, 0.08);
        QuantPlan base = Int8Specs.plan(m, 8);
        List<LayerOverride> ov = new java.util.ArrayList<>(base.overrides());
        ov.add(new LayerOverride("blocks.0.attn.proj", SpecPatch.KEEP, new SpecPatch(null, IntFormat.asymmetric(8), null, null, null)));
        QuantPlan plan = QuantPlan.resolve(m, base.defaults(), ov);
        QuantizedModel q = QuantizedModel.attach(m, plan, WeightCalibrator.calibrate(m, plan));
        Tensor x = input(3);
        try (CpuInt8Backend.Prepared p = (CpuInt8Backend.Prepared) new CpuInt8Backend().prepare(m, q)) {
            assertEquals(2, p.fusedBlocks());
            assertArrayEquals(m.forward(x, T, Y).data(), p.forward(x, T, Y).data());
        }
        q.detach();
    }
}
