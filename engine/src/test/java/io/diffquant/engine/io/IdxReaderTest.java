package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** IdxReader on tiny synthetic IDX files written here (plain and gzip), corrupt variants, and the pixel scaling. */
class IdxReaderTest {
    @TempDir Path dir;

    static byte[] idx(int magic, int[] dims, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(4 + 4 * dims.length + data.length);   // big-endian, as IDX is
        b.putInt(magic);
        for (int d : dims) b.putInt(d);
        return b.put(data).array();
    }

    static byte[] gzip(byte[] raw) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(bos)) {
            gz.write(raw);
        }
        return bos.toByteArray();
    }

    /** 3 images of 2x4: pixel value = 10*image + 4*row + col, plus 255 at the very end. */
    static byte[] tinyImages() {
        byte[] px = new byte[3 * 2 * 4];
        for (int i = 0; i < 3; i++)
            for (int r = 0; r < 2; r++)
                for (int c = 0; c < 4; c++) px[(i * 2 + r) * 4 + c] = (byte) (10 * i + 4 * r + c);
        px[px.length - 1] = (byte) 255;
        return idx(IdxReader.IMAGES_MAGIC, new int[] {3, 2, 4}, px);
    }

    private Path write(String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void readsImagesAndLabels(boolean compressed) throws IOException {
        byte[] img = tinyImages();
        byte[] lbl = idx(IdxReader.LABELS_MAGIC, new int[] {3}, new byte[] {9, 0, (byte) 200});
        // the name does not decide: a gzip file without .gz and a plain file with it are both recognised
        Path ip = write(compressed ? "images" : "images.gz", compressed ? gzip(img) : img);
        Path lp = write(compressed ? "labels" : "labels.gz", compressed ? gzip(lbl) : lbl);
        IdxReader.Images im = IdxReader.readImages(ip);
        assertEquals(3, im.count());
        assertEquals(2, im.rows());
        assertEquals(4, im.cols());
        assertEquals(8, im.pixelsPerImage());
        assertEquals(ip, im.file());
        assertEquals(10 * 2 + 4 + 2, im.pixel(2, 1, 2));
        assertEquals(255, im.pixel(2, 1, 3));
        assertArrayEquals(new int[] {9, 0, 200}, IdxReader.readLabels(lp));
        assertArrayEquals(new int[] {3, 2, 4}, IdxReader.dimensions(ip, IdxReader.IMAGES_MAGIC));

        Tensor t = im.toTensorMinusOneOne();
        assertArrayEquals(new int[] {3, 1, 2, 4}, t.shape());
        assertEquals(-1f, t.get(0, 0, 0, 0));
        assertEquals(1f, t.get(2, 0, 1, 3));
        assertEquals(IdxReader.toMinusOneOne(15), t.get(1, 0, 1, 1));
        float[][] rows = im.toMinusOneOneRows();
        assertEquals(3, rows.length);
        assertEquals(8, rows[0].length);
        assertEquals(t.get(1, 0, 1, 1), rows[1][5]);
        Tensor part = im.toTensorZeroOne(1, 3);
        assertArrayEquals(new int[] {2, 1, 2, 4}, part.shape());
        assertEquals(10f / 255f, part.get(0, 0, 0, 0));
        assertEquals(1f, part.get(1, 0, 1, 3));

        IdxReader.Images first = IdxReader.readImages(ip, 2);
        assertEquals(2, first.count());
        assertArrayEquals(Arrays.copyOf(im.pixels(), 16), first.pixels());
        assertArrayEquals(new int[] {9}, IdxReader.readLabels(lp, 1));
        assertEquals(0, IdxReader.readImages(ip, 0).count());
    }

    @Test
    void pixelScalingMatchesTorchvisionBitForBit() throws Exception {
        // reference: (uint8 -> float32).div(255), then (x - 0.5) / 0.5, computed by torch in make_io_fixture.py
        try (SafetensorsReader r = SafetensorsReader.open(SafetensorsReaderTest.resource("python_written.safetensors"))) {
            float[] torch = r.readFloat("pixel_minus_one_one").data();
            for (int v = 0; v < 256; v++) {
                assertEquals(Float.floatToRawIntBits(torch[v]), Float.floatToRawIntBits(IdxReader.toMinusOneOne(v)), "v=" + v);
                assertEquals(v / 127.5 - 1, IdxReader.toMinusOneOne(v), 1.5e-7);
            }
        }
        assertEquals(-1f, IdxReader.toMinusOneOne(0));
        assertEquals(1f, IdxReader.toMinusOneOne(255));
        assertEquals(0f, IdxReader.toZeroOne(0));
        assertEquals(1f, IdxReader.toZeroOne(255));
        assertThrows(IllegalArgumentException.class, () -> IdxReader.toMinusOneOne(256));
        assertThrows(IllegalArgumentException.class, () -> IdxReader.toZeroOne(-1));
    }

    private void assertRejected(Path p, boolean images, String... fragments) {
        IOException e = assertThrows(IOException.class, () -> {
            if (images) IdxReader.readImages(p); else IdxReader.readLabels(p);
        });
        String m = e.getMessage();
        assertTrue(m.startsWith(p.toString()), m);
        for (String f : fragments) assertTrue(m.contains(f), "expected '" + f + "' in: " + m);
    }

    @Test
    void missingFileNamesThePathAndTheDebianPackage() {
        Path p = dir.resolve("train-images-idx3-ubyte.gz");
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> IdxReader.readImages(p));
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("dataset-fashion-mnist") && e.getMessage().contains("/usr/share/datasets/fashion-mnist"),
                e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void corruptFilesGiveClearMessages(boolean compressed) throws IOException {
        java.util.function.Function<byte[], byte[]> enc = b -> {
            try {
                return compressed ? gzip(b) : b;
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        };
        String z = compressed ? ".gz" : "";
        byte[] img = tinyImages();
        byte[] lbl = idx(IdxReader.LABELS_MAGIC, new int[] {3}, new byte[] {1, 2, 3});
        // a labels file given as images, and the reverse
        assertRejected(write("l" + z, enc.apply(lbl)), true, "wrong magic number 0x00000801", "a labels file", "0x00000803");
        assertRejected(write("i" + z, enc.apply(img)), false, "wrong magic number 0x00000803", "an images file");
        // something that is not IDX at all
        assertRejected(write("png" + z, enc.apply("\u0089PNG\r\n\u001a\n....".getBytes())), true, "wrong magic number",
                "not an IDX file");
        // truncated inside the header, and inside the data
        assertRejected(write("h" + z, enc.apply(Arrays.copyOf(img, 10))), true, "truncated", "header");
        assertRejected(write("d" + z, enc.apply(Arrays.copyOf(img, img.length - 1))), true, "truncated", "3 images of 2x4");
        assertRejected(write("ld" + z, enc.apply(Arrays.copyOf(lbl, lbl.length - 2))), false, "truncated", "3 labels");
        // extra bytes after the data
        assertRejected(write("x" + z, enc.apply(Arrays.copyOf(img, img.length + 3))), true, "extra bytes");
        // a negative dimension
        assertRejected(write("n" + z, enc.apply(idx(IdxReader.IMAGES_MAGIC, new int[] {-1, 2, 2}, new byte[0]))), true,
                "dimension 0 is negative");
        // a header that announces 2 billion images: refused before any allocation
        assertRejected(write("big" + z, enc.apply(idx(IdxReader.IMAGES_MAGIC, new int[] {2_000_000_000, 28, 28}, new byte[64]))),
                true, "2000000000");
        assertRejected(write("big2" + z, enc.apply(idx(IdxReader.IMAGES_MAGIC, new int[] {1_000_000, 28, 28}, new byte[64]))),
                true, "truncated", "1000000 images of 28x28");
    }

    @Test
    void corruptGzipStreams() throws IOException {
        byte[] gz = gzip(tinyImages());
        // cut the compressed stream: the data ends early
        assertRejected(write("cut.gz", Arrays.copyOf(gz, gz.length - 12)), true, "truncated");
        // damage the CRC in the trailer: detected when the end is checked
        byte[] badCrc = gz.clone();
        badCrc[badCrc.length - 6] ^= 0x55;
        assertRejected(write("crc.gz", badCrc), true, "corrupt gzip");
        // only the gzip magic
        assertRejected(write("magic.gz", new byte[] {0x1f, (byte) 0x8b}), true);
    }
}
