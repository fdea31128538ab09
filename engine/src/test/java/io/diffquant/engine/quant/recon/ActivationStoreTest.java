package io.diffquant.engine.quant.recon;

import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The unit cache: memory and disk paths return the same rows; bad appends are rejected; files are deleted. */
class ActivationStoreTest {
    @TempDir Path tmp;

    @Test void memoryAndDiskGiveTheSameRows() throws Exception {
        Random r = new Random(1);
        Tensor a1 = QuantTestSupport.rand(r, 1, 3, 2, 5), b1 = QuantTestSupport.rand(r, 1, 3, 4);
        Tensor a2 = QuantTestSupport.rand(r, 1, 2, 2, 5), b2 = QuantTestSupport.rand(r, 1, 2, 4);
        int[] order = {4, 0, 2, 2, 3};
        try (ActivationStore mem = new ActivationStore(5, 1 << 20, tmp); ActivationStore disk = new ActivationStore(5, 100, tmp)) {
            for (ActivationStore s : List.of(mem, disk)) {
                s.append(new Tensor[] {a1, b1}, new float[] {9, 9, 9}, new int[] {1, 2, 3});
                s.append(new Tensor[] {a2, b2}, new float[] {5, 5}, new int[] {4, 5});
                assertTrue(s.complete());
            }
            assertFalse(mem.spilled());
            assertTrue(disk.spilled() && Files.size(disk.file()) == 5L * (10 + 4) * 4, "rows of 14 floats on disk");
            ActivationStore.Batch x = mem.gather(order), y = disk.gather(order);
            assertArrayEquals(new int[] {5, 2, 5}, x.fields()[0].shape());
            assertArrayEquals(new int[] {5, 4}, x.fields()[1].shape());
            for (int f = 0; f < 2; f++) assertArrayEquals(x.fields()[f].data(), y.fields()[f].data());
            assertArrayEquals(new float[] {5, 9, 9, 9, 5}, y.t());
            assertArrayEquals(new int[] {5, 1, 3, 3, 4}, y.y());
            // row 2 is the third row of the first append
            for (int i = 0; i < 10; i++) assertEquals(a1.data()[20 + i], y.fields()[0].data()[20 + i]);
            assertEquals(2, mem.rowsByTimestep().size());
            assertArrayEquals(new int[] {3, 4}, mem.rowsByTimestep().get(0));
            Path f = disk.file();
            disk.close();
            assertFalse(Files.exists(f), "close deletes the spill file");
            assertThrows(IllegalStateException.class, () -> disk.gather(new int[] {0}));
        }
    }

    @Test void badAppendsAreRejected() {
        try (ActivationStore s = new ActivationStore(4, 1 << 20, null)) {
            s.append(new Tensor[] {Tensor.zeros(2, 3)}, new float[] {1, 1}, null);
            assertNull(s.gather(new int[] {1}).y());
            assertTrue(assertThrows(IllegalArgumentException.class, () -> s.append(new Tensor[] {Tensor.zeros(2, 4)}, new float[] {1, 1}, null))
                    .getMessage().contains("expected [2, 3]"));
            assertThrows(IllegalArgumentException.class, () -> s.append(new Tensor[] {Tensor.zeros(2, 3)}, new float[] {1, 1}, new int[] {0, 0}));
            assertThrows(IllegalArgumentException.class, () -> s.append(new Tensor[] {Tensor.zeros(3, 3)}, new float[] {1, 1, 1}, null));
            assertThrows(IndexOutOfBoundsException.class, () -> s.gather(new int[] {2}));
        }
        assertThrows(IllegalArgumentException.class, () -> new ActivationStore(0, 1, null));
    }
}
