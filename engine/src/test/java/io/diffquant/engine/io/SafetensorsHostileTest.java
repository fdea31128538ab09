package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Corrupt and hostile safetensors files: every one must be rejected by {@link SafetensorsReader#open} with a
 * {@link SafetensorsException} naming the file (and the tensor where one is concerned), never an out-of-bounds read,
 * another exception type, or a crash.
 */
class SafetensorsHostileTest {
    @TempDir Path dir;
    private int counter;

    private Path write(byte[] content) throws IOException {
        Path p = dir.resolve("bad" + (counter++) + ".safetensors");
        Files.write(p, content);
        return p;
    }

    private static byte[] file(long headerLen, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLen).put(header).put(data);
        return b.array();
    }

    private static byte[] file(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return file(h.length, h, new byte[dataBytes]);
    }

    /** Asserts open() fails with a message that starts with the file and contains every fragment. */
    private SafetensorsException rejects(byte[] content, String tensor, String... fragments) throws IOException {
        Path p = write(content);
        SafetensorsException e = assertThrows(SafetensorsException.class, () -> {
            try (SafetensorsReader r = SafetensorsReader.open(p)) {
                fail("opened a corrupt file: " + r.names());
            }
        });
        String m = e.getMessage();
        assertTrue(m.startsWith(p.toString() + ": "), "message must start with the file: " + m);
        assertEquals(p, e.file());
        if (tensor != null) {
            assertEquals(tensor, e.tensor(), m);
            assertTrue(m.contains("tensor '" + tensor + "'"), m);
        }
        for (String f : fragments) assertTrue(m.contains(f), "expected '" + f + "' in: " + m);
        return e;
    }

    @Test void emptyFile() throws IOException { rejects(new byte[0], null, "too short", "0 bytes"); }

    @Test void shorterThanTheLengthField() throws IOException { rejects(new byte[5], null, "too short", "5 bytes"); }

    @Test void headerLengthPastEndOfFile() throws IOException {
        byte[] h = "{}".getBytes(StandardCharsets.UTF_8);
        rejects(file(500, h, new byte[0]), null, "header length 500 points past the end", "10 bytes");
    }

    @Test void hugeHeaderLength() throws IOException {
        rejects(file(1L << 40, new byte[16], new byte[0]), null, "header length 1099511627776", "limit");
    }

    @Test void headerLengthWithTheSignBitSet() throws IOException {
        rejects(file(-8, new byte[16], new byte[0]), null, "header length 18446744073709551608", "limit");
    }

    @Test void zeroHeaderLength() throws IOException {
        rejects(file(0, new byte[0], new byte[8]), null, "header is empty");
    }

    @Test void headerIsNotJson() throws IOException {
        rejects(file("hello, world", 0), null, "not valid JSON", "line 1");
    }

    @Test void headerIsJsonButNotAnObject() throws IOException {
        rejects(file("[1, 2, 3]", 0), null, "must be a JSON object", "[1,2,3]");
    }

    @Test void headerWithTrailingGarbage() throws IOException {
        rejects(file("{} {}", 0), null, "not valid JSON");
    }

    @Test void headerIsNotUtf8() throws IOException {
        byte[] h = {'{', '"', (byte) 0xC3, (byte) 0x28, '"', ':', '1', '}'};
        rejects(file(h.length, h, new byte[0]), null, "not valid UTF-8");
    }

    @Test void deeplyNestedHeaderDoesNotOverflowTheStack() throws IOException {
        String deep = "{\"a\":" + "[".repeat(100_000) + "]".repeat(100_000) + "}";
        rejects(file(deep, 0), null, "not valid JSON");
    }

    @Test void unknownDtype() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), "w",
                "unsupported dtype \"F8_E4M3\"", "F32");
    }

    @Test void dtypeNotAString() throws IOException {
        rejects(file("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "w", "\"dtype\" must be a string");
    }

    @Test void missingFields() throws IOException {
        rejects(file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "w", "missing \"dtype\"");
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "w", "missing \"shape\"");
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "w", "missing \"data_offsets\"");
    }

    @Test void entryNotAnObject() throws IOException {
        rejects(file("{\"w\":[1,2]}", 0), "w", "must be an object");
    }

    @Test void negativeDimension() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}}", 24), "w",
                "shape[1] must be a non-negative integer", "-3");
    }

    @Test void fractionalOrTextualDimension() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8), "w", "shape[0]", "2.5");
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"3\"],\"data_offsets\":[0,12]}}", 12), "w", "shape[0]");
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12), "w", "\"shape\" must be an array");
    }

    @Test void shapeOverflowsSixtyFourBits() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4),
                "w", "more elements than fit in 64 bits");
        // element count fits, byte count does not: 2^62 F32 = 2^64 bytes
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4),
                "w", "needs more bytes than fit in 64 bits");
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999999],\"data_offsets\":[0,4]}}", 4),
                "w", "shape[0] must be a non-negative integer");
    }

    @Test void badDataOffsets() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1), "w", "[begin, end]");
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 2), "w", "[begin, end]");
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,2]}}", 4), "w", "begin is after end");
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 4), "w", "data_offsets[0]");
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e30]}}", 4), "w", "data_offsets[1]");
    }

    @Test void offsetsPastTheEndOfTheData() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12), "w",
                "reach past the end of the data (12 bytes", "truncated");
        // an offset near Long.MAX_VALUE must not wrap around when added to the data start
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}}", 4),
                "w", "reach past the end");
    }

    @Test void byteLengthDisagreesWithShape() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16), "w",
                "hold 12 bytes but F32[4] needs 16");
        rejects(file("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16), "w",
                "hold 16 bytes but BF16[2, 2] needs 8");
    }

    @Test void overlappingTensors() throws IOException {
        SafetensorsException e = rejects(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), "b", "overlap", "'a'");
        assertTrue(e.getMessage().contains("[0, 16]"), e.getMessage());
        // a tensor nested inside an earlier, longer one is also caught
        rejects(file("{\"a\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                + "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}", 10), "b", "overlap", "'a'");
    }

    @Test void duplicateTensorName() throws IOException {
        rejects(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                + "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2), null, "not valid JSON", "Duplicate", "'w'");
    }

    @Test void badMetadata() throws IOException {
        rejects(file("{\"__metadata__\":{\"k\":3}}", 0), null, "__metadata__.k must be a string");
        rejects(file("{\"__metadata__\":[\"k\"]}", 0), null, "__metadata__ must be an object");
    }

    @Test void truncatedCopyOfAGoodFile() throws IOException {
        Path good = dir.resolve("good.safetensors");
        new SafetensorsWriter().add("first", Tensor.full(1f, 8)).add("last", Tensor.full(2f, 8)).write(good);
        byte[] all = Files.readAllBytes(good);
        rejects(Arrays.copyOf(all, all.length - 1), "last", "reach past the end", "truncated");
        rejects(Arrays.copyOf(all, 20), null, "points past the end");
    }

    @Test void missingFileAndDirectory() throws IOException {
        Path none = dir.resolve("absent.safetensors");
        SafetensorsException e = assertThrows(SafetensorsException.class, () -> SafetensorsReader.open(none));
        assertTrue(e.getMessage().startsWith(none + ": no such file"), e.getMessage());
        e = assertThrows(SafetensorsException.class, () -> SafetensorsReader.open(dir));
        assertTrue(e.getMessage().startsWith(dir.toString()), e.getMessage());
    }

    @Test void emptyTensorWithADimensionBeyondIntRangeOpensButCannotBecomeATensor() throws IOException {
        Path p = write(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,3000000000],\"data_offsets\":[0,0]}}", 0));
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> r.readFloat("w"));
            assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("int range"), e.getMessage());
            assertArrayEquals(new byte[0], r.readBytes("w"));
        }
    }

    @Test void validEdgeCasesAreAccepted() throws IOException {
        // no tensors at all; header padded with trailing spaces; unknown extra keys in an entry; a hole in the data
        Path p = write(file("{\"__metadata__\":{}}      ", 0));
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertEquals(0, r.names().size());
            assertEquals(0, r.metadata().size());
        }
        p = write(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6],\"extra\":true}}", 8));
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertArrayEquals(new int[] {0, 0}, r.readInts("w"));
        }
    }

    /**
     * Random mutations of a good file (byte changes in the header and length field, truncations, appended bytes):
     * each either opens and reads every tensor, or fails with a SafetensorsException naming the file.
     */
    @Test void randomMutationsNeverEscapeAsOtherExceptions() throws IOException {
        Path good = dir.resolve("seed.safetensors");
        new SafetensorsWriter().metadata("k", "v").add("a", Tensor.full(1f, 3, 2)).addF16("b", Tensor.full(2f, 5))
                .addLongs("c", new long[] {1, 2, 3}, 3).addRaw("d", DType.U8, new long[] {4}, new byte[] {1, 2, 3, 4})
                .write(good);
        byte[] base = Files.readAllBytes(good);
        int headerEnd = 8 + (int) ByteBuffer.wrap(base).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        SplittableRandom rnd = new SplittableRandom(1234);
        Path p = dir.resolve("mutant.safetensors");
        int opened = 0, rejected = 0;
        for (int iter = 0; iter < 400; iter++) {
            byte[] m = base.clone();
            switch (iter % 4) {
                case 0 -> m[rnd.nextInt(headerEnd)] = (byte) rnd.nextInt(256);
                case 1 -> m[8 + rnd.nextInt(headerEnd - 8)] = (byte) "0123456789[]{},:\"-e. ".charAt(rnd.nextInt(21));
                case 2 -> m = Arrays.copyOf(m, rnd.nextInt(m.length));
                default -> {
                    m = Arrays.copyOf(m, m.length + 1 + rnd.nextInt(16));
                    m[rnd.nextInt(8)] = (byte) rnd.nextInt(256);
                }
            }
            Files.write(p, m);
            try (SafetensorsReader r = SafetensorsReader.open(p)) {
                for (String n : r.names()) {
                    TensorInfo t = r.info(n);
                    if (t.numel() < 1_000_000) r.readFloat(n);
                    if (t.byteLength() < 1_000_000) r.readBytes(n);
                }
                opened++;
            } catch (SafetensorsException e) {
                assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
                rejected++;
            }
        }
        assertTrue(opened > 0 && rejected > 120, "opened " + opened + ", rejected " + rejected);
    }

    /** Offsets beyond 2 GB work (sparse file: no real disk use); tensors too large for an array are refused clearly. */
    @Test void filesLargerThanTwoGigabytes() throws IOException {
        long big = 2_200_000_000L;
        String header = "{\"big\":{\"dtype\":\"I8\",\"shape\":[" + big + "],\"data_offsets\":[0," + big + "]},"
                + "\"tail\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + big + "," + (big + 8) + "]}}";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        Path p = dir.resolve("sparse.safetensors");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).put(h);
            f.write(b.array());
            f.setLength(8 + h.length + big + 8);
            f.seek(8 + h.length + big);
            ByteBuffer t = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.25f).putFloat(-7f);
            f.write(t.array());
        }
        try (SafetensorsReader r = SafetensorsReader.open(p)) {
            assertArrayEquals(new float[] {1.25f, -7f}, r.readFloat("tail").data());
            assertEquals(big, r.segment("big").byteSize());
            SafetensorsException e = assertThrows(SafetensorsException.class, () -> r.readFloat("big"));
            assertTrue(e.getMessage().contains("'big'") && e.getMessage().contains("more than a Java array holds"),
                    e.getMessage());
            e = assertThrows(SafetensorsException.class, () -> r.readBytes("big"));
            assertTrue(e.getMessage().contains("do not fit in a Java array"), e.getMessage());
        }
    }
}
