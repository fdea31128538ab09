package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Reads files written by an independent implementation (tools/golden/make_io_fixture.py: struct + json + numpy,
 * F16/BF16 converted by torch) and checks every value exactly.
 */
class SafetensorsReaderTest {

    static Path resource(String name) {
        try {
            return Path.of(SafetensorsReaderTest.class.getResource("/io/" + name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new AssertionError("test resource io/" + name + " missing", e);
        }
    }

    static final List<String> DATA_ORDER = List.of("f32", "f32_special", "f16", "bf16", "conv_src", "conv_f16",
            "conv_bf16", "i8", "u8", "i16", "i32", "i64", "t", "f64", "bool", "scalar", "empty", "arange", "pixel_minus_one_one");

    @ParameterizedTest
    @ValueSource(strings = {"python_written.safetensors", "python_unaligned.safetensors"})
    void readsEveryTensorOfThePythonFile(String fileName) throws Exception {
        Path file = resource(fileName);
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(file, r.file());
            assertEquals(DATA_ORDER, r.names());
            assertEquals(Map.of("format", "pt", "made_by", "tools/golden/make_io_fixture.py"), r.metadata());

            Tensor f32 = r.readFloat("f32");
            assertArrayEquals(new int[] {2, 3}, f32.shape());
            assertArrayEquals(new float[] {1.5f, -2.25f, 0f, -0f, Float.MAX_VALUE, Float.MIN_VALUE}, f32.data());
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(f32.data()[3]));
            float[] sp = r.readFloat("f32_special").data();
            assertEquals(Float.POSITIVE_INFINITY, sp[0]);
            assertEquals(Float.NEGATIVE_INFINITY, sp[1]);
            assertEquals(0x7FC00123, Float.floatToRawIntBits(sp[2]), "NaN payload kept bit for bit");

            assertArrayEquals(new float[] {1f, -2f, 0.5f, 65504f, 0x1p-14f, 0x1p-24f, -0f, Float.POSITIVE_INFINITY},
                    r.readFloat("f16").data());
            assertArrayEquals(new float[] {1f, -2f, 0.15625f, Float.intBitsToFloat(0x7F7F0000), 0x1p-133f, -0f,
                    Float.NEGATIVE_INFINITY}, r.readFloat("bf16").data());
            assertEquals(DType.F16, r.info("f16").dtype());
            assertEquals(DType.BF16, r.info("bf16").dtype());

            assertArrayEquals(new float[] {-128, -1, 0, 1, 127}, r.readFloat("i8").data());
            Tensor u8 = r.readFloat("u8");
            assertArrayEquals(new int[] {2, 2}, u8.shape());
            assertArrayEquals(new float[] {0, 1, 128, 255}, u8.data());
            assertArrayEquals(new float[] {-32768, -1, 32767}, r.readFloat("i16").data());
            assertArrayEquals(new int[] {Integer.MIN_VALUE, -1, 0, Integer.MAX_VALUE}, r.readInts("i32"));
            assertArrayEquals(new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE, 4294967296L}, r.readLongs("i64"));
            assertArrayEquals(new float[] {-0x1p63f, -1, 0, 0x1p63f, 0x1p32f}, r.readFloat("i64").data());
            assertArrayEquals(new int[] {0, 500, 999}, r.readInts("t"));
            assertArrayEquals(new long[] {0, 500, 999}, r.readLongs("t"));
            assertArrayEquals(new long[] {-128, -1, 0, 1, 127}, r.readLongs("i8"));
            assertArrayEquals(new int[] {0, 1, 128, 255}, r.readInts("u8"));
            assertArrayEquals(new int[] {-32768, -1, 32767}, r.readInts("i16"));
            assertArrayEquals(new float[] {0.1f, Float.NEGATIVE_INFINITY, 2.5f}, r.readFloat("f64").data());
            assertArrayEquals(new float[] {1, 0, 1}, r.readFloat("bool").data());
            assertArrayEquals(new int[] {1, 0, 1}, r.readInts("bool"));

            Tensor scalar = r.readFloat("scalar");
            assertEquals(0, scalar.rank());
            assertArrayEquals(new float[] {42f}, scalar.data());
            assertArrayEquals(new long[0], r.info("scalar").shape());
            Tensor empty = r.readFloat("empty");
            assertArrayEquals(new int[] {0, 3}, empty.shape());
            assertEquals(0, empty.size());

            Tensor ar = r.readFloat("arange");
            assertArrayEquals(new int[] {2, 3, 4}, ar.shape());
            for (int i = 0; i < 24; i++) assertEquals(i * 0.5f - 3, ar.data()[i]);
            assertEquals(-3f + 0.5f * (1 * 12 + 2 * 4 + 3), ar.get(1, 2, 3));

            // raw bytes are the little-endian encoding
            byte[] raw = r.readBytes("i32");
            assertEquals(16, raw.length);
            assertEquals(Integer.MIN_VALUE, ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getInt(0));
            assertEquals(r.info("i32").byteLength(), raw.length);

            Map<String, Tensor> all = r.readAllFloat();
            assertEquals(DATA_ORDER, List.copyOf(all.keySet()));
            assertArrayEquals(f32.data(), all.get("f32").data());
        }
    }

    @Test
    void halfConversionsAgreeWithTorchBitForBit() throws Exception {
        try (SafetensorsReader r = SafetensorsReader.open(resource("python_written.safetensors"))) {
            float[] src = r.readFloat("conv_src").data();
            assertEquals(1000, src.length);
            short[] f16 = shorts(r.readBytes("conv_f16"));
            short[] bf16 = shorts(r.readBytes("conv_bf16"));
            float[] f16Read = r.readFloat("conv_f16").data();
            float[] bf16Read = r.readFloat("conv_bf16").data();
            for (int i = 0; i < src.length; i++) {
                assertEquals(f16[i], HalfFloats.floatToHalf(src[i]), "F16 of " + src[i] + " (index " + i + ")");
                assertEquals(bf16[i], HalfFloats.floatToBFloat16(src[i]), "BF16 of " + src[i] + " (index " + i + ")");
                assertEquals(HalfFloats.halfToFloat(f16[i]), f16Read[i]);
                assertEquals(HalfFloats.bfloat16ToFloat(bf16[i]), bf16Read[i]);
            }
        }
    }

    private static short[] shorts(byte[] b) {
        short[] s = new short[b.length / 2];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asShortBuffer().get(s);
        return s;
    }

    @Test
    void infoQueriesAndIntShape() throws Exception {
        try (SafetensorsReader r = SafetensorsReader.open(resource("python_written.safetensors"))) {
            TensorInfo t = r.info("arange");
            assertEquals("arange", t.name());
            assertEquals(DType.F32, t.dtype());
            assertArrayEquals(new long[] {2, 3, 4}, t.shape());
            assertArrayEquals(new int[] {2, 3, 4}, t.intShape());
            assertEquals(24, t.numel());
            assertEquals(96, t.end() - t.begin());
            assertTrue(r.contains("t"));
            assertFalse(r.contains("T"));
            long[] s = t.shape();
            s[0] = 99;
            assertEquals(2, r.info("arange").shape()[0], "shape() returns a copy");
            assertEquals(t, new TensorInfo("arange", DType.F32, new long[] {2, 3, 4}, t.begin(), t.end()));
            IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                    () -> new TensorInfo("w", DType.F32, new long[] {1L << 31}, 0, 0).intShape());
            assertTrue(big.getMessage().contains("'w'"), big.getMessage());
        }
    }

    @Test
    void wrongTypeAndRangeErrorsNameFileAndTensor() throws Exception {
        Path file = resource("python_written.safetensors");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> r.readInts("i64"));
            assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
            assertTrue(e.getMessage().contains("'i64'") && e.getMessage().contains("element 0 = -9223372036854775808"),
                    e.getMessage());
            e = assertThrows(SafetensorsException.class, () -> r.readLongs("f32"));
            assertTrue(e.getMessage().contains("'f32'") && e.getMessage().contains("F32"), e.getMessage());
            assertEquals("f32", e.tensor());
            assertEquals(file, e.file());
        }
    }

    @Test
    void missingNameListsCloseNames() throws Exception {
        Path file = resource("python_written.safetensors");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> r.readFloat("conv_f17"));
            String m = e.getMessage();
            assertTrue(m.startsWith(file + ": tensor 'conv_f17': no such tensor"), m);
            assertTrue(m.contains("19 tensors") && m.contains("close names: conv_f16"), m);
            e = assertThrows(SafetensorsException.class, () -> r.info("completely.different.name"));
            assertFalse(e.getMessage().contains("close names"), e.getMessage());
        }
    }

    @Test
    void segmentIsAZeroCopyReadOnlyViewAndCloseEndsReads() throws Exception {
        SafetensorsReader r = SafetensorsReader.open(resource("python_unaligned.safetensors"));
        MemorySegment seg = r.segment("i32");
        assertEquals(16, seg.byteSize());
        assertTrue(seg.isReadOnly());
        assertEquals(Integer.MAX_VALUE, seg.get(SafetensorsReader.I32_LE, 12));
        assertEquals(1, r.segment("f32").address() % 2, "unaligned fixture: F32 data starts at an odd address");
        assertEquals(1, r.segment("conv_src").address() % 2);
        r.close();
        r.close();  // idempotent
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> r.readFloat("f32"));
        assertTrue(e.getMessage().contains("python_unaligned.safetensors") && e.getMessage().contains("closed"));
        assertThrows(IllegalStateException.class, () -> r.readBytes("i8"));
        assertThrows(IllegalStateException.class, () -> seg.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(DATA_ORDER, r.names(), "header queries still work after close");
    }
}
