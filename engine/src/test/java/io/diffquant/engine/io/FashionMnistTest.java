package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * FashionMnist on the real dataset when installed (expected values computed independently with numpy from the
 * same files), and on synthetic directories for the error paths.
 */
class FashionMnistTest {
    @TempDir Path dir;

    private static FashionMnist real() {
        FashionMnist f = new FashionMnist();
        assumeTrue(f.isAvailable(), "Fashion-MNIST is not installed in " + FashionMnist.DEFAULT_DIR
                + " (Debian package dataset-fashion-mnist)");
        return f;
    }

    @Test
    void realTrainSplit() throws IOException {
        FashionMnist.Data d = real().load(FashionMnist.Split.TRAIN);
        assertEquals(60000, d.size());
        assertEquals(60000, d.images().count());
        assertEquals(28, d.images().rows());
        assertArrayEquals(new int[] {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, java.util.Arrays.copyOf(d.labels(), 10));
        assertEquals("Ankle boot", FashionMnist.CLASS_NAMES.get(d.labels()[0]));
        int[] perClass = new int[10];
        for (int l : d.labels()) perClass[l]++;
        for (int c = 0; c < 10; c++) assertEquals(6000, perClass[c], "class " + c);
        assertEquals(76247, pixelSum(d.images(), 0));
        assertEquals(16684, pixelSum(d.images(), 59999));
        int[] row14 = {0, 0, 1, 4, 6, 7, 2, 0, 0, 0, 0, 0, 237, 226, 217, 223, 222, 219, 222, 221, 216, 223, 229, 215,
                218, 255, 77, 0};
        for (int c = 0; c < 28; c++) assertEquals(row14[c], d.images().pixel(0, 14, c));
        Tensor t = d.imagesMinusOneOne(0, 2);
        assertArrayEquals(new int[] {2, 1, 28, 28}, t.shape());
        assertEquals(1f, t.get(0, 0, 14, 25));
        assertEquals(-1f, t.get(0, 0, 14, 0));
    }

    @Test
    void realTestSplitAndLimit() throws IOException {
        FashionMnist f = real();
        FashionMnist.Data d = f.load(FashionMnist.Split.TEST);
        assertEquals(10000, d.size());
        assertEquals(FashionMnist.Split.TEST.officialSize(), d.size());
        assertArrayEquals(new int[] {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, java.util.Arrays.copyOf(d.labels(), 10));
        assertEquals(33456, pixelSum(d.images(), 0));
        assertEquals(24390, pixelSum(d.images(), 9999));
        FashionMnist.Data first = f.load(FashionMnist.Split.TEST, 5);
        assertEquals(5, first.size());
        assertEquals(33456, pixelSum(first.images(), 0));
        assertTrue(f.imagesFile(FashionMnist.Split.TEST).toString().endsWith("t10k-images-idx3-ubyte.gz"));
    }

    private static int pixelSum(IdxReader.Images im, int i) {
        int s = 0;
        for (int r = 0; r < im.rows(); r++) for (int c = 0; c < im.cols(); c++) s += im.pixel(i, r, c);
        return s;
    }

    private void writeSplit(String prefix, int images, int labels, int size, byte labelValue, boolean gz) throws IOException {
        byte[] img = IdxReaderTest.idx(IdxReader.IMAGES_MAGIC, new int[] {images, size, size}, new byte[images * size * size]);
        byte[] lbl = new byte[labels];
        java.util.Arrays.fill(lbl, labelValue);
        byte[] l = IdxReaderTest.idx(IdxReader.LABELS_MAGIC, new int[] {labels}, lbl);
        String z = gz ? ".gz" : "";
        Files.write(dir.resolve(prefix + "-images-idx3-ubyte" + z), gz ? IdxReaderTest.gzip(img) : img);
        Files.write(dir.resolve(prefix + "-labels-idx1-ubyte" + z), gz ? IdxReaderTest.gzip(l) : l);
    }

    @Test
    void syntheticDirectoryPlainFiles() throws IOException {
        writeSplit("train", 4, 4, 28, (byte) 3, false);
        writeSplit("t10k", 2, 2, 28, (byte) 9, true);
        FashionMnist f = new FashionMnist(dir);
        assertTrue(f.isAvailable());
        assertEquals(dir.resolve("train-images-idx3-ubyte"), f.imagesFile(FashionMnist.Split.TRAIN));
        assertArrayEquals(new int[] {3, 3, 3, 3}, f.load(FashionMnist.Split.TRAIN).labels());
        assertArrayEquals(new int[] {9, 9}, f.load(FashionMnist.Split.TEST).labels());
    }

    @Test
    void errors() throws IOException {
        FashionMnist absent = new FashionMnist(dir.resolve("nowhere"));
        assertFalse(absent.isAvailable());
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> absent.load(FashionMnist.Split.TRAIN));
        assertTrue(e.getMessage().contains("nowhere") && e.getMessage().contains("dataset-fashion-mnist")
                && e.getMessage().contains("/usr/share/datasets/fashion-mnist"), e.getMessage());

        FashionMnist f = new FashionMnist(dir);
        e = assertThrows(NoSuchFileException.class, () -> f.load(FashionMnist.Split.TEST));
        assertTrue(e.getMessage().contains("t10k-images-idx3-ubyte.gz") && e.getMessage().contains("dataset-fashion-mnist"),
                e.getMessage());

        writeSplit("train", 4, 3, 28, (byte) 1, true);         // count mismatch
        IOException m = assertThrows(IOException.class, () -> f.load(FashionMnist.Split.TRAIN));
        assertTrue(m.getMessage().contains("3 labels but") && m.getMessage().contains("has 4 images"), m.getMessage());
        assertThrows(IOException.class, () -> f.load(FashionMnist.Split.TRAIN, 2), "mismatch found even with a limit");

        writeSplit("train", 2, 2, 27, (byte) 1, true);         // wrong image size
        m = assertThrows(IOException.class, () -> f.load(FashionMnist.Split.TRAIN));
        assertTrue(m.getMessage().contains("28x28") && m.getMessage().contains("27x27"), m.getMessage());

        writeSplit("train", 2, 2, 28, (byte) 10, true);        // label out of range
        m = assertThrows(IOException.class, () -> f.load(FashionMnist.Split.TRAIN));
        assertTrue(m.getMessage().contains("label 0 is 10") && m.getMessage().contains("train-labels-idx1-ubyte.gz"),
                m.getMessage());
    }
}
