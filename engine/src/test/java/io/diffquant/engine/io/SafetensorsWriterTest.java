package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Round trips through SafetensorsWriter and SafetensorsReader, the header layout, and the writer's checks. */
class SafetensorsWriterTest {
    @TempDir Path dir;

    static Tensor random(long seed, int... shape) {
        Tensor t = Tensor.zeros(shape);
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < t.size(); i++) t.data()[i] = (float) (r.nextGaussian() * Math.exp(r.nextInt(-8, 8)));
        return t;
    }

    @Test
    void roundTripsEveryDtype() throws IOException {
        Tensor a = random(1, 3, 4, 5);
        Tensor h = random(2, 7);
        Tensor b = random(3, 2, 3);
        byte[] i8 = {-128, -5, 0, 5, 127, 1};
        byte[] u8 = {0, 1, (byte) 200, (byte) 255};
        ByteBuffer i16 = ByteBuffer.allocate(6).order(ByteOrder.LITTLE_ENDIAN).putShort((short) -300).putShort((short) 0)
                .putShort(Short.MAX_VALUE);
        ByteBuffer f64 = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(Math.PI).putDouble(-1e-3);
        Path p = dir.resolve("all.safetensors");
        new SafetensorsWriter()
                .metadata("format", "pt").metadata("note", "ünïcødé ✓ \"quoted\"")
                .add("a", a).addF16("h", h).addBF16("b", b)
                .addLongs("l", new long[] {Long.MIN_VALUE, 0, Long.MAX_VALUE, 999}, 2, 2)
                .addInts("i", new int[] {Integer.MIN_VALUE, -1, 7}, 3)
                .addRaw("i8", DType.I8, new long[] {2, 3}, i8)
                .addRaw("u8", DType.U8, new long[] {4}, u8)
                .addRaw("i16", DType.I16, new long[] {3}, i16.array())
                .addRaw("f64", DType.F64, new long[] {2}, f64.array())
                .addRaw("bool", DType.BOOL, new long[] {3}, new byte[] {1, 0, 1})
                .write(p);
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertEquals(List.of("a", "h", "b", "l", "i", "i8", "u8", "i16", "f64", "bool"), r.names());
            assertEquals(Map.of("format", "pt", "note", "ünïcødé ✓ \"quoted\""), r.metadata());
            Tensor ra = r.readFloat("a");
            assertArrayEquals(a.shape(), ra.shape());
            assertArrayEquals(a.data(), ra.data(), 0f);
            assertArrayEquals(HalfFloats.roundToHalf(h).data(), r.readFloat("h").data(), 0f);
            assertArrayEquals(HalfFloats.roundToBFloat16(b).data(), r.readFloat("b").data(), 0f);
            assertArrayEquals(new int[] {2, 3}, r.readFloat("b").shape());
            assertEquals(DType.F16, r.info("h").dtype());
            assertEquals(DType.BF16, r.info("b").dtype());
            assertArrayEquals(new long[] {Long.MIN_VALUE, 0, Long.MAX_VALUE, 999}, r.readLongs("l"));
            assertArrayEquals(new long[] {2, 2}, r.info("l").shape());
            assertEquals(DType.I64, r.info("l").dtype());
            assertArrayEquals(new int[] {Integer.MIN_VALUE, -1, 7}, r.readInts("i"));
            assertEquals(DType.I32, r.info("i").dtype());
            assertArrayEquals(i8, r.readBytes("i8"));
            assertArrayEquals(new int[] {-128, -5, 0, 5, 127, 1}, r.readInts("i8"));
            assertArrayEquals(new int[] {0, 1, 200, 255}, r.readInts("u8"));
            assertArrayEquals(new long[] {-300, 0, 32767}, r.readLongs("i16"));
            assertArrayEquals(new float[] {(float) Math.PI, -1e-3f}, r.readFloat("f64").data(), 0f);
            assertArrayEquals(new float[] {1, 0, 1}, r.readFloat("bool").data(), 0f);
        }
    }

    @Test
    void emptyAndZeroDimTensors() throws IOException {
        Path p = dir.resolve("edge.safetensors");
        new SafetensorsWriter()
                .add("scalar", Tensor.scalar(-3.5f))
                .add("empty", Tensor.zeros(0, 4))
                .addF16("scalar16", Tensor.scalar(0.1f))
                .addLongs("t", new long[] {500})          // 0-dim I64
                .addInts("none", new int[0], 0)
                .add("after", Tensor.of(new float[] {9, 8}, 2))
                .write(p);
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            Tensor s = r.readFloat("scalar");
            assertEquals(0, s.rank());
            assertEquals(-3.5f, s.data()[0]);
            assertArrayEquals(new int[] {0, 4}, r.readFloat("empty").shape());
            assertEquals(0.0999755859375f, r.readFloat("scalar16").data()[0]);
            assertArrayEquals(new long[0], r.info("t").shape());
            assertArrayEquals(new long[] {500}, r.readLongs("t"));
            assertArrayEquals(new int[0], r.readInts("none"));
            assertArrayEquals(new float[] {9, 8}, r.readFloat("after").data());
        }
    }

    @Test
    void headerIsPaddedWithSpacesToEightBytesAndOffsetsFollowAddOrder() throws IOException {
        Path p = dir.resolve("layout.safetensors");
        new SafetensorsWriter().metadata("k", "v").add("x", Tensor.of(new float[] {1, 2, 3}, 3))
                .addRaw("y", DType.U8, new long[] {1}, new byte[] {7}).write(p);
        byte[] bytes = Files.readAllBytes(p);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, (8 + n) % 8, "data starts on an 8-byte boundary");
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        String json = "{\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                + "\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[12,13]}}";
        assertEquals(json + " ".repeat((int) n - json.length()), header);
        assertTrue(n - json.length() < 8);
        assertEquals(8 + n + 13, bytes.length);
        ByteBuffer data = ByteBuffer.wrap(bytes, (int) (8 + n), 13).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1f, data.getFloat());
        assertEquals(2f, data.getFloat());
        assertEquals(3f, data.getFloat());
        assertEquals(7, data.get());
    }

    @Test
    void largeTensorsSpanSeveralWriteChunks() throws IOException {
        Tensor big = random(9, 300_001);          // 1.2 MB, more than the 1 MB staging buffer
        Tensor big16 = random(10, 600_003);       // 1.2 MB as F16
        Path p = dir.resolve("big.safetensors");
        new SafetensorsWriter().add("big", big).addF16("big16", big16).addBF16("bigbf", big16).write(p);
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertArrayEquals(big.data(), r.readFloat("big").data(), 0f);
            assertArrayEquals(HalfFloats.roundToHalf(big16).data(), r.readFloat("big16").data(), 0f);
            assertArrayEquals(HalfFloats.roundToBFloat16(big16).data(), r.readFloat("bigbf").data(), 0f);
        }
    }

    @Test
    void rejectsBadInput() {
        SafetensorsWriter w = new SafetensorsWriter().add("w", Tensor.zeros(2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.add("w", Tensor.zeros(3)));
        assertTrue(e.getMessage().contains("'w' was already added"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> w.addF16("w", Tensor.zeros(3)));
        e = assertThrows(IllegalArgumentException.class, () -> w.addRaw("r", DType.F32, new long[] {3}, new byte[11]));
        assertTrue(e.getMessage().contains("'r'") && e.getMessage().contains("needs 12 bytes, got 11"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> w.addLongs("l", new long[] {1, 2, 3}, 2, 2));
        assertTrue(e.getMessage().contains("needs 4 values, got 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> w.addInts("n", new int[0], -1));
        assertTrue(e.getMessage().contains("negative dimension"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> w.add("__metadata__", Tensor.zeros(1)));
        assertThrows(IllegalArgumentException.class,
                () -> w.addRaw("huge", DType.F64, new long[] {1L << 40, 1L << 30}, new byte[0]));
        // a rejected name can be added later correctly
        w.addInts("n", new int[] {4}, 1);
        assertEquals(List.of("w", "n"), w.names());
    }

    @Test
    void writeReplacesAtomicallyAndLeavesNoTemporaryFiles() throws IOException {
        Path p = dir.resolve("m.safetensors");
        new SafetensorsWriter().add("v", Tensor.full(1f, 4)).write(p);
        new SafetensorsWriter().add("v", Tensor.full(2f, 4)).write(p);
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertArrayEquals(new float[] {2, 2, 2, 2}, r.readFloat("v").data());
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(p), s.toList());
        }
        // the target is a directory: fails, names the file, leaves the directory as it was
        Path sub = Files.createDirectory(dir.resolve("sub.safetensors"));
        SafetensorsException e = assertThrows(SafetensorsException.class,
                () -> new SafetensorsWriter().add("v", Tensor.zeros(1)).write(sub));
        assertTrue(e.getMessage().startsWith(sub.toString()), e.getMessage());
        assertTrue(Files.isDirectory(sub));
        e = assertThrows(SafetensorsException.class,
                () -> new SafetensorsWriter().add("v", Tensor.zeros(1)).write(dir.resolve("no/such/dir/x.safetensors")));
        assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(2, s.count(), "no temporary file left behind");
        }
    }
}
