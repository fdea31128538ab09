package io.diffquant.engine.model;

import io.diffquant.engine.io.HalfFloats;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ModelFolder's mapped in-place loading ({@link MappedWeights}) and the heap check ({@link MemoryBudget}). */
class MappedLoadingTest {
    @TempDir Path tmp;

    static Path golden(String name) throws Exception {
        return Path.of(MappedLoadingTest.class.getClassLoader().getResource("golden/" + name).toURI());
    }

    @Test void inPlaceLoadEqualsTheFileAndConvertsF16() throws Exception {
        Path dir = golden("dit-small");
        DiffusionModel m = ModelFolder.load(dir).model();
        Map<String, Tensor> sd = m.stateDict();
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve(ModelFolder.DIT_WEIGHTS))) {
            assertEquals(r.names().size(), sd.size());
            for (String n : r.names()) assertArrayEquals(r.readFloat(n).data(), sd.get(n).data(), 0f, n);
            assertEquals(4L * m.parameterCount(), MappedWeights.float32Bytes(r));
            // the same weights stored as F16 load as their F16 roundings
            Path f16 = tmp.resolve("f16");
            Files.createDirectories(f16);
            Files.copy(dir.resolve("config.json"), f16.resolve("config.json"));
            SafetensorsWriter w = new SafetensorsWriter();
            for (String n : r.names()) w.addF16(n, r.readFloat(n));
            w.write(f16.resolve(ModelFolder.DIT_WEIGHTS));
            ModelFolder.Loaded h = ModelFolder.load(f16);
            assertEquals("F16", h.dtypes().get("blocks.0.attn.qkv.weight"));
            for (String n : r.names())
                assertArrayEquals(HalfFloats.roundToHalf(r.readFloat(n)).data(), h.model().stateDict().get(n).data(), 0f, n);
        }
    }

    @Test void badFilesNameTheTensor() throws Exception {
        Path dir = golden("dit-small");
        Path bad = tmp.resolve("bad");
        Files.createDirectories(bad);
        Files.copy(dir.resolve("config.json"), bad.resolve("config.json"));
        try (SafetensorsReader r = SafetensorsReader.open(dir.resolve(ModelFolder.DIT_WEIGHTS))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (String n : r.names()) {
                Tensor t = r.readFloat(n);
                if (n.equals("blocks.1.mlp.fc2.bias")) t.data()[3] = Float.NaN;
                w.add(n, t);
            }
            w.write(bad.resolve(ModelFolder.DIT_WEIGHTS));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelFolder.load(bad));
            assertTrue(e.getMessage().contains("'blocks.1.mlp.fc2.bias'") && e.getMessage().contains("NaN"), e.getMessage());
            w = new SafetensorsWriter();
            for (String n : r.names()) w.add(n, n.equals("final_layer.linear.bias") ? Tensor.zeros(7) : r.readFloat(n));
            w.write(bad.resolve(ModelFolder.DIT_WEIGHTS));
            e = assertThrows(IllegalArgumentException.class, () -> ModelFolder.load(bad));
            assertTrue(e.getMessage().contains("'final_layer.linear.bias' has shape [7]"), e.getMessage());
        }
    }

    @Test void heapCheckSaysWhatToSet() {
        long gib = 1L << 30;
        MemoryBudget.check(2 * gib, 8 * gib, gib, 16 * gib, "ok");
        MemoryBudget.InsufficientMemoryException e = assertThrows(MemoryBudget.InsufficientMemoryException.class,
                () -> MemoryBudget.check(2_700_000_000L, 2 * gib, gib / 2, 32 * gib, "DiT-XL/2 /m"));
        assertTrue(e.getMessage().startsWith("DiT-XL/2 /m needs 2.51 GiB of heap for its FP32 weights (2.95 GiB with room for activations)") && e.getMessage().contains("DIFFQUANT_HEAP=-Xmx4g"),
                e.getMessage());
        e = assertThrows(MemoryBudget.InsufficientMemoryException.class,
                () -> MemoryBudget.check(20 * gib, 4 * gib, gib, 16 * gib, "big"));
        assertTrue(e.getMessage().contains("this machine has only 16.00 GiB"), e.getMessage());
        assertTrue(MemoryBudget.peakHeap() >= MemoryBudget.usedHeap() / 2 && MemoryBudget.usedHeap() > 0);
    }
}
