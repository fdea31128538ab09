package io.diffquant.kernels.tornado;

import io.diffquant.engine.backend.ExecutionBackend;
import io.diffquant.engine.backend.ExecutionBackends;
import io.diffquant.engine.backend.ExecutionInfo;
import io.diffquant.engine.backend.PreparedDenoiser;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.OcpFp8;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The tornado execution backend on the plain JVM: discovery and fallback, per-block fallback to the engine, execution labels. */
class TornadoBackendTest {

    @Test
    void serviceLoaderFindsTheBackendAndFallsBackWithoutTheRuntime() {
        ExecutionBackend b = ExecutionBackends.installed().get(ExecutionBackend.TORNADO);
        assertNotNull(b, "kernels-tornado registers the 'tornado' backend through META-INF/services");
        assertTrue(b instanceof TornadoBackend);
        if (System.getProperty("tornado.load.runtime.implementation") == null) {
            // this JVM was started without the SDK's argfile: the backend says why and the choice falls back to jvm
            String why = b.unavailableReason();
            assertNotNull(why);
            assertTrue(why.contains("TORNADOVM_HOME"), why);
            ExecutionBackends.Choice c = ExecutionBackends.choose("tornado");
            assertTrue(c.fellBack());
            assertEquals(ExecutionBackend.JVM, c.backend().id());
        }
    }

    @Test
    void unsupportedBlocksStayInTheEngineAndTheLabelCountsThem() {
        DiT m = KernelContract.smallDiT(41);
        TensorSpec w8 = TensorSpec.weight(IntFormat.symmetric(8), Granularity.CHANNEL, RangeSpec.MINMAX);
        TensorSpec dyn8 = TensorSpec.input(IntFormat.symmetric(8), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC);
        List<LayerOverride> ov = new ArrayList<>();
        for (String p : List.of("*.attn.q", "*.attn.k", "*.attn.v", "*.attn.softmax")) ov.add(LayerOverride.fullPrecision(p));
        ov.add(new LayerOverride("x_embedder.*", SpecPatch.OFF, SpecPatch.OFF));
        // block 1's fc1 gets FP8 weights: no real kernel here, so block 1 runs in the engine
        ov.add(new LayerOverride("blocks.1.mlp.fc1", new SpecPatch(null, OcpFp8.E4M3, Granularity.CHANNEL, null, null), SpecPatch.OFF));
        QuantPlan plan = QuantPlan.resolve(m, new PointSpec(w8, dyn8), ov);
        CalibratedParams cp = WeightCalibrator.calibrate(m, plan);
        QuantizedModel q = QuantizedModel.attach(m, plan, cp);
        Tensor x = Refs.randn(new SplittableRandom(42), 1f, 2, 2, 8, 8);
        float[] t = {700f, 20f};
        int[] y = {1, 3};
        Tensor ref = m.forward(x, t, y);
        try (PreparedDenoiser p = new TornadoBackend(TornadoDiT.Target.JVM, DeviceSettings.defaults()).prepare(m, q)) {
            ExecutionInfo info = p.execution();
            assertEquals(ExecutionBackend.TORNADO, info.backend());
            assertEquals(ExecutionInfo.Execution.MIXED, info.execution());
            assertEquals(5, info.realLayers(), info.label());                    // the five Linears of block 0
            assertEquals(q.hookedLayers().size() - 5, info.fakeLayers(), info.label());
            assertTrue(info.note().contains("blocks [1] in the engine") && info.note().contains("blocks.1.mlp.fc1"), info.note());
            Tensor got = p.forward(x, t, y);
            KernelContract.assertCloseToReference("mixed engine / kernel blocks", got.data(), ref.data(), true);
            p.close();
            assertThrows(IllegalStateException.class, () -> p.forward(x, t, y));
        } finally {
            q.detach();
        }
        // the model itself is untouched: its forward still equals the reference after the backend is closed
        assertArrayEquals(m.forward(x, t, y).data(), m.forward(x, t, y).data(), 0f);
    }

    @Test
    void fullPrecisionModelRunsFp32KernelsEverywhere() {
        DiT m = KernelContract.smallDiT(43);
        Tensor x = Refs.randn(new SplittableRandom(44), 1f, 1, 2, 8, 8);
        Tensor ref = m.forward(x, new float[] {5f}, new int[] {2});
        try (PreparedDenoiser p = new TornadoBackend(TornadoDiT.Target.JVM, DeviceSettings.defaults()).prepare(m, null)) {
            assertEquals(ExecutionInfo.Execution.FULL_PRECISION, p.execution().execution());
            Tensor got = p.forward(x, new float[] {5f}, new int[] {2});
            KernelContract.assertCloseToReference("fp32 blocks", got.data(), ref.data(), false);
        }
    }
}
