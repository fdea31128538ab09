package io.diffquant.engine.backend;

import io.diffquant.engine.backend.cpu.CpuInt8Backend;
import io.diffquant.engine.diffusion.SampleRequest;
import io.diffquant.engine.diffusion.Sampling;
import io.diffquant.engine.diffusion.SamplingRun;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.backend.cpu.Int8Specs;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The backend registry: ServiceLoader discovery, choice by id, and the fallback to jvm with one log line. */
class ExecutionBackendsTest {
    /** A provider registered by this test's META-INF/services that reports itself unusable. */
    public static final class Unavailable implements ExecutionBackend {
        @Override public String id() { return "test-unavailable"; }
        @Override public String description() { return "test"; }
        @Override public String unavailableReason() { return "no test device"; }
        @Override public PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized) { throw new AssertionError("never prepared"); }
    }

    /** A provider registered by this test's META-INF/services that runs the model and claims real kernels. */
    public static final class Echo implements ExecutionBackend {
        @Override public String id() { return "test-echo"; }
        @Override public String description() { return "test"; }
        @Override public PreparedDenoiser prepare(DiffusionModel model, QuantizedModel quantized) {
            return new JvmBackend.Prepared(model, ExecutionInfo.of("test-echo", 3, 0, "echo kernels", ""));
        }
    }

    /** Log records of the registry's logger while body runs. */
    static List<LogRecord> logged(Runnable body) {
        Logger log = Logger.getLogger(ExecutionBackends.class.getName());
        List<LogRecord> out = new ArrayList<>();
        Handler h = new Handler() {
            @Override public void publish(LogRecord r) { out.add(r); }
            @Override public void flush() { }
            @Override public void close() { }
        };
        log.addHandler(h);
        try {
            body.run();
        } finally {
            log.removeHandler(h);
        }
        return out;
    }

    @Test void findsTheEngineBackendsAndTestProvidersThroughServiceLoader() {
        var all = ExecutionBackends.installed();
        assertEquals(ExecutionBackend.JVM, all.keySet().iterator().next(), "jvm first");
        assertInstanceOf(CpuInt8Backend.class, all.get(ExecutionBackend.CPU_INT8));
        assertTrue(all.containsKey("test-echo"));
        assertEquals(List.of("jvm", "cpu-int8", "tornado"), ExecutionBackends.ids().subList(0, 3));
        assertTrue(ExecutionBackends.ids().contains("test-unavailable"));
    }

    @Test void aMissingBackendFallsBackToJvmWithExactlyOneLogLine() {
        ExecutionBackends.Choice[] c = new ExecutionBackends.Choice[1];
        List<LogRecord> log = logged(() -> c[0] = ExecutionBackends.choose("tornado"));
        assertEquals(1, log.size(), "one log line");
        assertEquals(Level.WARNING, log.get(0).getLevel());
        assertTrue(log.get(0).getMessage().contains("'tornado' is not available") && log.get(0).getMessage().contains("falling back to 'jvm'"),
                log.get(0).getMessage());
        assertInstanceOf(JvmBackend.class, c[0].backend());
        assertEquals("tornado", c[0].requested());
        assertTrue(c[0].fellBack());

        List<LogRecord> log2 = logged(() -> c[0] = ExecutionBackends.choose("test-unavailable"));
        assertEquals(1, log2.size());
        assertTrue(log2.get(0).getMessage().contains("no test device"), log2.get(0).getMessage());
        assertInstanceOf(JvmBackend.class, c[0].backend());

        assertEquals(0, logged(() -> ExecutionBackends.choose("cpu-int8")).size(), "no log line when the backend runs");
    }

    @Test void theResultOfAFallbackSaysSo() throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(8, 2, 4, 32, 1, 2, 4.0, 0.1, 10, true), 1, 0.05);
        QuantizedModel q = Int8Specs.attach(m, 8);
        try (PreparedDenoiser d = ExecutionBackends.prepare("tornado", m, q)) {
            ExecutionInfo info = d.execution();
            assertEquals("jvm", info.backend());
            assertEquals("tornado", info.requested());
            assertTrue(info.fellBack());
            assertEquals(ExecutionInfo.Execution.FAKE_QUANTIZATION, info.execution());
            assertTrue(info.label().startsWith("jvm: fake quantization on " + q.hookedLayers().size() + " layers"), info.label());
            assertTrue(info.label().contains("requested 'tornado' is not available"), info.label());
            SamplingRun run = Sampling.start(SampleRequest.forModel(m, 1).denoiser(d).respacing("ddim2").labels(1).build());
            assertEquals(info, run.execution());
            Tensor direct = m.forward(QuantTestSupport.rand(new java.util.Random(1), 1, 1, 4, 8, 8), new float[] {5}, new int[] {1});
            assertEquals(direct.size(), d.forward(QuantTestSupport.rand(new java.util.Random(1), 1, 1, 4, 8, 8), new float[] {5}, new int[] {1}).size());
        }
        q.detach();
    }

    @Test void plainDenoisersAreLabelledFromTheirHooks() throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(8, 2, 4, 32, 1, 2, 4.0, 0.1, 10, true), 2, 0.05);
        assertEquals(ExecutionInfo.Execution.FULL_PRECISION, ExecutionInfo.of(m).execution());
        assertEquals("jvm: FP32 (no quantization)", ExecutionInfo.of(m).label());
        QuantizedModel q = Int8Specs.attach(m, 8);
        ExecutionInfo f = ExecutionInfo.of(m);
        assertEquals(ExecutionInfo.Execution.FAKE_QUANTIZATION, f.execution());
        assertEquals(q.hookedLayers().size(), f.fakeLayers());
        assertFalse(f.real());
        q.detach();
        ExecutionInfo custom = ExecutionInfo.of((x, t, y) -> x);
        assertTrue(custom.note().contains("not known"), custom.label());
    }

    @Test void unknownIdsAreRefusedWithTheValidOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ExecutionBackends.choose("cpu-int9"));
        assertTrue(e.getMessage().contains("'cpu-int9'") && e.getMessage().contains("jvm, cpu-int8, tornado"), e.getMessage());
    }

    @Test void installedProvidersArePrepared() throws Exception {
        DiT m = QuantTestSupport.randomDiT(new DiTConfig(8, 2, 4, 32, 1, 2, 4.0, 0.1, 10, true), 3, 0.05);
        try (PreparedDenoiser d = ExecutionBackends.prepare("test-echo", m, null)) {
            assertEquals("test-echo: real low-bit kernels (echo kernels) on all 3 quantized layers", d.execution().label());
        }
        QuantizedModel q = Int8Specs.attach(m, 8);
        DiT other = QuantTestSupport.randomDiT(new DiTConfig(8, 2, 4, 32, 1, 2, 4.0, 0.1, 10, true), 3, 0.05);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CpuInt8Backend().prepare(other, q));
        assertTrue(e.getMessage().contains("another"), e.getMessage());
        q.detach();
        assertThrows(IllegalArgumentException.class, () -> new CpuInt8Backend().prepare(m, q));
    }
}
