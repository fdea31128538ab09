package io.diffquant.app.cli;

import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.metrics.ImageMetrics;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static io.diffquant.app.cli.CliTest.GOLDEN;
import static io.diffquant.app.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** sample --backend: the execution label, the fallback, and cpu-int8 images against fake quantization. */
class BackendCliTest {
    static String[] sample(Path out, Path tensors, String... extra) {
        String[] base = {"sample", "-m", GOLDEN.resolve("dit-small").toString(), "--steps", "5", "--count", "2", "--batch", "2",
                "--out", out.toString(), "--tensors", tensors.toString()};
        String[] all = new String[base.length + extra.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return all;
    }

    @Test void int8ImagesMatchFakeQuantizationAndEveryResultSaysWhatRan(@TempDir Path tmp) throws Exception {
        CliTest.Result fake = run(sample(tmp.resolve("fake.png"), tmp.resolve("fake.safetensors"), "--w8a8"));
        assertEquals(0, fake.code(), fake.err());
        assertTrue(fake.out().contains("execution: jvm: fake quantization on 15 layers"), fake.out());
        CliTest.Result real = run(sample(tmp.resolve("int8.png"), tmp.resolve("int8.safetensors"), "--w8a8", "--backend", "cpu-int8"));
        assertEquals(0, real.code(), real.err());
        assertTrue(real.out().contains("execution: cpu-int8: real low-bit kernels (oneDNN s8*s8->s32 GEMM) on 14 of 15 quantized layers"), real.out());
        CliTest.Result fp = run(sample(tmp.resolve("fp.png"), tmp.resolve("fp.safetensors")));
        assertTrue(fp.out().contains("execution: jvm: FP32 (no quantization)"), fp.out());
        try (SafetensorsReader a = SafetensorsReader.open(tmp.resolve("fake.safetensors")); SafetensorsReader b = SafetensorsReader.open(tmp.resolve("int8.safetensors"))) {
            assertEquals("cpu-int8", b.metadata().get("backend"));
            assertTrue(b.metadata().get("execution").startsWith("cpu-int8: real low-bit kernels"), b.metadata().get("execution"));
            assertEquals("jvm", a.metadata().get("backend"));
            Tensor x = a.readFloat("images"), y = b.readFloat("images");
            double psnr = ImageMetrics.psnr(x.data(), y.data(), ImageMetrics.RANGE_SIGNED_UNIT);
            assertTrue(psnr >= 40, "PSNR " + psnr);
        }
    }

    @Test void aMissingBackendFallsBackAndTheOutputSaysSo(@TempDir Path tmp) {
        CliTest.Result r = run(sample(tmp.resolve("t.png"), tmp.resolve("t.safetensors"), "--w8a8", "--backend", "tornado"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("execution: jvm: fake quantization") && r.out().contains("requested 'tornado' is not available"), r.out());
    }

    @Test void badBackendAndQuantArgumentsAreOneLineErrors(@TempDir Path tmp) {
        CliTest.Result r = run(sample(tmp.resolve("t.png"), tmp.resolve("t.safetensors"), "--backend", "cpu-int9"));
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown execution backend 'cpu-int9'") && r.err().contains("jvm, cpu-int8, tornado"), r.err());
        r = run(sample(tmp.resolve("t.png"), tmp.resolve("t.safetensors"), "--quant", tmp.resolve("missing.json").toString()));
        assertEquals(2, r.code());
        assertTrue(r.err().contains("missing.json"), r.err());
        r = run(sample(tmp.resolve("t.png"), tmp.resolve("t.safetensors"), "--quant", tmp.resolve("x.json").toString(), "--w8a8"));
        assertEquals(2, r.code());
        assertTrue(r.err().contains("choose one"), r.err());
    }

    @Test void aCalibratedSymmetricConfigRunsOnInt8(@TempDir Path tmp) {
        Path cfg = tmp.resolve("w8a8.json");
        CliTest.Result r = run("calibrate", "-m", GOLDEN.resolve("dit-small").toString(), "--method", "rtn", "--wformat", "int8-sym", "--aformat", "int8-sym",
                "--steps", "5", "--samples", "2", "--batch", "2", "--timesteps", "2", "--per-timestep", "2", "--out", cfg.toString());
        assertEquals(0, r.code(), r.err());
        r = run(sample(tmp.resolve("c.png"), tmp.resolve("c.safetensors"), "--quant", cfg.toString(), "--backend", "cpu-int8"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("execution: cpu-int8: real low-bit kernels (oneDNN s8*s8->s32 GEMM) on 14 of"), r.out());
        assertTrue(r.out().contains("x_embedder.proj"), "the fake-quantized layers are named: " + r.out());
    }
}
