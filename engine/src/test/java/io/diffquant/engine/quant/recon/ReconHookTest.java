package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Gradients;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The unit's hooks compute exactly what the quantized model computes (same weights, same activation fake
 * quantization, including the split quantization of a UNet skip concatenation), and pass straight-through gradients.
 */
class ReconHookTest {

    @Test void staticSplitInputAndWeightMatchTheQuantizedModelBitForBitAndPassStraightThroughGradients() throws Exception {
        QuantTestSupport.TinyConcatModel m = new QuantTestSupport.TinyConcatModel(3);
        PointSpec d = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(IntFormat.asymmetric(4), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC));
        QuantPlan plan = QuantPlan.resolve(m, d, List.of(LayerOverride.fullPrecision("head"), LayerOverride.fullPrecision("mid")));
        QuantPoint p = plan.point("up.conv1");
        assertEquals(2, p.inputParts());
        // narrow ranges so that some values are clipped: [-0.5, 0.5] on part 0, [-1, 2] on part 1
        InputParams ip = InputParams.shared(ActivationParams.of(IntFormat.asymmetric(4).paramsForRange(new float[] {-0.5f}, new float[] {0.5f}),
                IntFormat.asymmetric(4).paramsForRange(new float[] {-1f}, new float[] {2f})));
        CalibratedParams params = WeightCalibrator.calibrate(m, plan).withInput("up.conv1", ip);
        Layer conv = m.layers().get("up.conv1");
        Tensor x = QuantTestSupport.rand(new Random(4), 1, 2, 5, 4, 4);
        ForwardContext ctx = new ForwardContext(new float[] {7, 7}, null);

        QuantizedModel q = QuantizedModel.attach(m, plan, params);
        Tensor want = conv.forward(x, ctx);
        Tensor qw = q.quantizedWeight("up.conv1");
        q.detach();

        ReconHook h = new ReconHook("up.conv1", null, qw, SteActQuant.of(p, plan.spec("up.conv1").input(), ip));
        conv.addHook(h);
        Tensor got;
        Gradients g;
        try (Tape tape = Tape.start(List.of(x))) {
            got = conv.forward(x, ctx);
            g = tape.backward(Ops.sum(got));
        } finally {
            conv.removeHook(h);
        }
        assertArrayEquals(want.data(), got.data(), "same output as the quantized model");

        // straight-through: d sum(conv(xq)) / dx = d sum(conv(xq)) / dxq where x lies inside its part's range, 0 where clipped
        Tensor xq = SteActQuant.of(p, plan.spec("up.conv1").input(), ip).apply(x, ctx);
        Gradients gq;
        try (Tape tape = Tape.start(List.of(xq))) {
            gq = tape.backward(Ops.sum(Ops.conv2d(xq, qw, conv.param("bias"), 1, 1)));
        }
        float[] gx = g.get(x).data(), gxq = gq.get(xq).data();
        int clipped = 0, passed = 0;
        for (int i = 0; i < x.size(); i++) {
            int c = (i / 16) % 5;
            float lo = c < 2 ? -0.5f : -1f, hi = c < 2 ? 0.5f : 2f;
            float v = x.data()[i];
            // the grid's ends are the rounded range ends: stay away from them
            if (v < lo - 0.1f || v > hi + 0.1f) { assertEquals(0f, gx[i], "clipped element " + i); clipped++; }
            else if (v > lo + 0.1f && v < hi - 0.1f) { assertEquals(gxq[i], gx[i], 1e-6, "element " + i); passed++; }
        }
        assertTrue(clipped > 10 && passed > 10, clipped + " clipped, " + passed + " passed");
    }

    @Test void dynamicPerTokenFpInputMatchesTheQuantizedModel() throws Exception {
        var m = QuantTestSupport.ditSmall();
        PointSpec d = new PointSpec(TensorSpec.weight(FpFormat.of(2, 1), Granularity.group(32), RangeSpec.MINMAX),
                TensorSpec.input(FpFormat.of(4, 3), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC));
        QuantPlan plan = QuantPlan.resolve(m, d, List.of());
        CalibratedParams params = WeightCalibrator.calibrate(m, plan);
        Layer fc1 = m.layers().get("blocks.1.mlp.fc1");
        Tensor x = QuantTestSupport.rand(new Random(5), 1, 2, 16, 64);
        ForwardContext ctx = new ForwardContext(new float[] {3, 3}, new int[] {1, 2});
        QuantizedModel q = QuantizedModel.attach(m, plan, params);
        Tensor want = fc1.forward(x, ctx);
        Tensor qw = q.quantizedWeight("blocks.1.mlp.fc1");
        q.detach();
        QuantPoint p = plan.point("blocks.1.mlp.fc1");
        WeightParams wp = params.weight("blocks.1.mlp.fc1");
        AdaRoundWeight a = AdaRoundWeight.create("blocks.1.mlp.fc1.weight", fc1.param("weight"), FpFormat.of(2, 1), Granularity.group(32), wp.params(), true);
        a.useFixed(AdaRoundWeight.rtn(fc1.param("weight"), FpFormat.of(2, 1), Granularity.group(32), wp.params()));
        assertArrayEquals(qw.data(), a.active().data(), "RTN through AdaRoundWeight.rtn equals the quantized model's weight");
        ReconHook h = new ReconHook(p.name(), a, null, SteActQuant.of(p, plan.spec(p.name()).input(), null));
        fc1.addHook(h);
        try {
            assertArrayEquals(want.data(), fc1.forward(x, ctx).data());
        } finally {
            fc1.removeHook(h);
        }
    }

    @Test void perTimestepInputsNeedUniformBatchesAndMissingParametersAreNamed() throws Exception {
        QuantTestSupport.TinyConcatModel m = new QuantTestSupport.TinyConcatModel(3);
        PointSpec d = new PointSpec(TensorSpec.OFF,
                TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.PER_TIMESTEP));
        QuantPlan plan = QuantPlan.resolve(m, d, List.of());
        QuantPoint p = plan.point("head");
        QuantParams qp = IntFormat.asymmetric(8).paramsForRange(new float[] {-1}, new float[] {1});
        SteActQuant s = SteActQuant.of(p, plan.spec("head").input(), InputParams.perTimestep(Map.of(10f, ActivationParams.of(qp))));
        assertTrue(s.perTimestep());
        Tensor x = QuantTestSupport.rand(new Random(1), 1, 2, 3);
        assertEquals(6, s.apply(x, new ForwardContext(new float[] {10, 10}, null)).size());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.apply(x, new ForwardContext(new float[] {10, 20}, null)));
        assertTrue(e.getMessage().contains("head") && e.getMessage().contains("one timestep"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> s.apply(x, new ForwardContext(new float[] {20, 20}, null)));
        assertTrue(e.getMessage().contains("t = 20"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SteActQuant.of(p, plan.spec("head").input(), null));
        assertTrue(e.getMessage().contains("'head'") && e.getMessage().contains("no calibrated parameters"), e.getMessage());
    }
}
