package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reader of IDX files of unsigned bytes (Y. LeCun's MNIST format, used unchanged by zalandoresearch/fashion-mnist):
 * a big-endian header {@code 0x0000 08 nd} followed by nd big-endian int32 dimensions, then the data.
 * Gzip-compressed files are recognised by their magic bytes, whatever their name.
 *
 * <p>Pixel scaling: {@link #toMinusOneOne(int)} maps a pixel v in [0, 255] to {@code (v/255 - 0.5)/0.5} computed in
 * float32 exactly as torchvision's {@code ToTensor()} then {@code Normalize(0.5, 0.5)} do, so 0 -> -1 and 255 -> 1.
 */
public final class IdxReader {
    private IdxReader() {}

    /** Magic of an images file: unsigned bytes, 3 dimensions (count, rows, cols). */
    public static final int IMAGES_MAGIC = 0x00000803;
    /** Magic of a labels file: unsigned bytes, 1 dimension (count). */
    public static final int LABELS_MAGIC = 0x00000801;
    /** Where the missing-file messages send the user. */
    static final String DATASET_HINT = "the Debian package dataset-fashion-mnist provides /usr/share/datasets/fashion-mnist";

    private static final long MAX_ARRAY = Integer.MAX_VALUE - 16;
    /** Deflate cannot compress better than about 1032:1, which bounds what a gzip file of a given size can hold. */
    private static final long MAX_DEFLATE_RATIO = 1100;

    private static final float[] MINUS_ONE_ONE = new float[256];
    static {
        for (int v = 0; v < 256; v++) MINUS_ONE_ONE[v] = ((float) v / 255f - 0.5f) / 0.5f;
    }

    /** A pixel value in [0, 255] scaled to [-1, 1] (torchvision ToTensor + Normalize(0.5, 0.5), float32). */
    public static float toMinusOneOne(int pixel) {
        if (pixel < 0 || pixel > 255) throw new IllegalArgumentException("pixel value " + pixel + " outside [0, 255]");
        return MINUS_ONE_ONE[pixel];
    }

    /** A pixel value in [0, 255] scaled to [0, 1] (torchvision ToTensor: v / 255 in float32). */
    public static float toZeroOne(int pixel) {
        if (pixel < 0 || pixel > 255) throw new IllegalArgumentException("pixel value " + pixel + " outside [0, 255]");
        return (float) pixel / 255f;
    }

    /**
     * Images as read: {@code count} images of {@code rows x cols} unsigned bytes, row-major, image after image.
     * {@code pixels} is the raw buffer (shared, not copied).
     */
    public record Images(Path file, int count, int rows, int cols, byte[] pixels) {
        public Images {
            if ((long) count * rows * cols != pixels.length) throw new IllegalArgumentException(
                    "images " + count + "x" + rows + "x" + cols + " need " + ((long) count * rows * cols) + " bytes, got " + pixels.length);
        }

        public int pixelsPerImage() { return rows * cols; }

        /** Pixel (r, c) of image {@code i}, in [0, 255]. */
        public int pixel(int i, int r, int c) {
            if (i < 0 || i >= count || r < 0 || r >= rows || c < 0 || c >= cols) throw new IndexOutOfBoundsException(
                    "pixel (" + i + ", " + r + ", " + c + ") of " + count + "x" + rows + "x" + cols);
            return pixels[(i * rows + r) * cols + c] & 0xFF;
        }

        /** float[count][rows*cols], scaled to [-1, 1] by {@link IdxReader#toMinusOneOne(int)}. */
        public float[][] toMinusOneOneRows() {
            int p = pixelsPerImage();
            float[][] out = new float[count][p];
            for (int i = 0; i < count; i++) {
                float[] row = out[i];
                for (int j = 0; j < p; j++) row[j] = MINUS_ONE_ONE[pixels[i * p + j] & 0xFF];
            }
            return out;
        }

        /** Images [from, to) as a Tensor [n, 1, rows, cols] scaled to [-1, 1] by {@link IdxReader#toMinusOneOne(int)}. */
        public Tensor toTensorMinusOneOne(int from, int to) {
            return tensor(from, to, MINUS_ONE_ONE);
        }

        /** All images as a Tensor [count, 1, rows, cols] scaled to [-1, 1]. */
        public Tensor toTensorMinusOneOne() { return toTensorMinusOneOne(0, count); }

        /** Images [from, to) as a Tensor [n, 1, rows, cols] scaled to [0, 1] (v / 255). */
        public Tensor toTensorZeroOne(int from, int to) {
            float[] lut = new float[256];
            for (int v = 0; v < 256; v++) lut[v] = toZeroOne(v);
            return tensor(from, to, lut);
        }

        private Tensor tensor(int from, int to, float[] lut) {
            if (from < 0 || to > count || from > to) throw new IndexOutOfBoundsException("images " + from + ".." + to + " of " + count);
            int p = pixelsPerImage();
            float[] d = new float[(to - from) * p];
            int base = from * p;
            for (int j = 0; j < d.length; j++) d[j] = lut[pixels[base + j] & 0xFF];
            return Tensor.of(d, to - from, 1, rows, cols);
        }
    }

    /** Reads every image of an images file (magic 0x00000803). */
    public static Images readImages(Path file) throws IOException { return readImages(file, Integer.MAX_VALUE); }

    /** Reads the first {@code min(limit, count)} images of an images file. */
    public static Images readImages(Path file, int limit) throws IOException {
        if (limit < 0) throw new IllegalArgumentException("limit must be >= 0, got " + limit);
        try (Source s = Source.open(file)) {
            int[] dims = s.header(IMAGES_MAGIC, "images", 3);
            int n = dims[0], rows = dims[1], cols = dims[2];
            if (rows <= 0 || cols <= 0) throw s.error("image size " + rows + "x" + cols + " must be positive");
            int take = Math.min(n, limit);
            long bytes = (long) take * rows * cols;
            if (bytes > MAX_ARRAY) throw s.error(take + " images of " + rows + "x" + cols + " do not fit in one array");
            byte[] px = s.data(bytes, (long) n * rows * cols, n + " images of " + rows + "x" + cols, take == n);
            return new Images(file, take, rows, cols, px);
        }
    }

    /** Reads every label of a labels file (magic 0x00000801), as values in [0, 255]. */
    public static int[] readLabels(Path file) throws IOException { return readLabels(file, Integer.MAX_VALUE); }

    /** Reads the first {@code min(limit, count)} labels of a labels file. */
    public static int[] readLabels(Path file, int limit) throws IOException {
        if (limit < 0) throw new IllegalArgumentException("limit must be >= 0, got " + limit);
        try (Source s = Source.open(file)) {
            int n = s.header(LABELS_MAGIC, "labels", 1)[0];
            int take = Math.min(n, limit);
            byte[] b = s.data(take, n, n + " labels", take == n);
            int[] out = new int[take];
            for (int i = 0; i < take; i++) out[i] = b[i] & 0xFF;
            return out;
        }
    }

    /**
     * The dimensions in the header of an IDX file of unsigned bytes (count first), read without the data; the file
     * must have {@code expectedMagic}.
     */
    public static int[] dimensions(Path file, int expectedMagic) throws IOException {
        if ((expectedMagic & 0xFFFFFF00) != 0x0800) {
            throw new IllegalArgumentException(String.format("not an unsigned-byte IDX magic: 0x%08X", expectedMagic));
        }
        try (Source s = Source.open(file)) {
            return s.header(expectedMagic, expectedMagic == IMAGES_MAGIC ? "images" : expectedMagic == LABELS_MAGIC
                    ? "labels" : (expectedMagic & 0xFF) + "-dimensional", expectedMagic & 0xFF);
        }
    }

    /** An open IDX file, plain or gzip, with the position after the header tracked for messages. */
    private static final class Source implements AutoCloseable {
        final Path file;
        final InputStream in;
        final boolean gzip;
        final long fileSize;
        int headerBytes;

        private Source(Path file, InputStream in, boolean gzip, long fileSize) {
            this.file = file;
            this.in = in;
            this.gzip = gzip;
            this.fileSize = fileSize;
        }

        static Source open(Path file) throws IOException {
            if (!Files.exists(file)) {
                throw new NoSuchFileException(file.toString(), null, "no such IDX file (" + DATASET_HINT + ")");
            }
            if (Files.isDirectory(file)) throw new IOException(file + ": is a directory, expected an IDX file");
            long size = Files.size(file);
            InputStream raw = new BufferedInputStream(Files.newInputStream(file), 1 << 16);
            try {
                raw.mark(2);
                int b0 = raw.read(), b1 = raw.read();
                raw.reset();
                boolean gz = b0 == 0x1f && b1 == 0x8b;
                InputStream in = gz ? new BufferedInputStream(new GZIPInputStream(raw, 1 << 16), 1 << 16) : raw;
                return new Source(file, in, gz, size);
            } catch (IOException e) {
                raw.close();
                throw new IOException(file + ": cannot read gzip header: " + e.getMessage(), e);
            }
        }

        IOException error(String msg) { return new IOException(file + ": " + msg); }

        int[] header(int magic, String kind, int ndims) throws IOException {
            int m = readInt("magic number");
            if (m != magic) {
                String found = (m & 0xFFFF0000) == 0 && ((m >>> 8) & 0xFF) == 0x08
                        ? " (an IDX file of unsigned bytes with " + (m & 0xFF) + " dimension(s)"
                            + (m == LABELS_MAGIC ? ": a labels file" : m == IMAGES_MAGIC ? ": an images file" : "") + ")"
                        : " (not an IDX file of unsigned bytes)";
                throw error(String.format("wrong magic number 0x%08X%s, expected 0x%08X for an IDX %s file",
                        m, found, magic, kind));
            }
            int[] dims = new int[ndims];
            for (int i = 0; i < ndims; i++) {
                dims[i] = readInt("dimension " + i);
                if (dims[i] < 0) throw error("dimension " + i + " is negative (" + dims[i] + ")");
            }
            return dims;
        }

        private int readInt(String what) throws IOException {
            int v = 0;
            for (int i = 0; i < 4; i++) {
                int b = readByte();
                if (b < 0) throw error("truncated: the file ends inside the header (reading the " + what + ")");
                v = (v << 8) | b;
                headerBytes++;
            }
            return v;
        }

        private int readByte() throws IOException {
            try {
                return in.read();
            } catch (EOFException e) {
                return -1;
            } catch (ZipException e) {
                throw new IOException(file + ": corrupt gzip data: " + e.getMessage(), e);
            }
        }

        /**
         * Reads {@code want} data bytes of the {@code total} the header announces ({@code what} describes them);
         * with {@code checkEnd}, also that nothing follows.
         */
        byte[] data(long want, long total, String what, boolean checkEnd) throws IOException {
            long plausible = gzip ? fileSize * MAX_DEFLATE_RATIO + 4096 : fileSize - headerBytes;
            if (total > plausible) {
                throw error("truncated: the header announces " + what + " (" + total + " bytes of data) but the "
                        + (gzip ? "gzip file of " + fileSize + " bytes cannot hold that many" : "file has only "
                        + Math.max(0, fileSize - headerBytes) + " bytes after the header"));
            }
            byte[] out = new byte[(int) want];
            int got;
            try {
                got = in.readNBytes(out, 0, out.length);
            } catch (EOFException e) {
                throw error("truncated: the gzip stream ends early while reading " + what + " (" + e.getMessage() + ")");
            } catch (ZipException e) {
                throw new IOException(file + ": corrupt gzip data while reading " + what + ": " + e.getMessage(), e);
            }
            if (got < want) {
                throw error("truncated: the header announces " + what + " (" + total + " bytes of data) but only "
                        + got + " bytes follow the header");
            }
            if (checkEnd && readByte() >= 0) {
                throw error("has extra bytes after the " + what + " the header announces (corrupt, or a wrong header)");
            }
            return out;
        }

        @Override public void close() throws IOException { in.close(); }
    }
}
