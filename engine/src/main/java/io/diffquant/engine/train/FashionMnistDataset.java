package io.diffquant.engine.train;

import io.diffquant.engine.io.FashionMnist;
import io.diffquant.engine.io.IdxReader;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Fashion-MNIST (zalandoresearch/fashion-mnist IDX files, read by {@link FashionMnist}) as a training
 * {@link Dataset}: images [1, 28, 28] scaled to [-1, 1] exactly as torchvision's ToTensor + Normalize(0.5, 0.5)
 * ({@link IdxReader#toMinusOneOne(int)}), labels 0..9. Pixels stay bytes in memory and are scaled per batch.
 */
public final class FashionMnistDataset implements Dataset {
    private static final float[] SCALE = new float[256];
    static {
        for (int v = 0; v < 256; v++) SCALE[v] = IdxReader.toMinusOneOne(v);
    }

    private final FashionMnist.Data data;
    private final Path dir;
    private final byte[] pixels;
    private final int per;

    private FashionMnistDataset(FashionMnist.Data data, Path dir) {
        this.data = data;
        this.dir = dir;
        this.pixels = data.images().pixels();
        this.per = data.images().pixelsPerImage();
    }

    /** Wraps an already loaded split. */
    public static FashionMnistDataset of(FashionMnist.Data data) { return new FashionMnistDataset(data, null); }

    /**
     * Loads the first {@code min(limit, size)} images of a split from {@code dir}; a missing directory or file gives a
     * {@link java.nio.file.NoSuchFileException} naming it and the Debian package dataset-fashion-mnist.
     */
    public static FashionMnistDataset load(Path dir, FashionMnist.Split split, int limit) throws IOException {
        if (limit < 1) throw new IllegalArgumentException("Fashion-MNIST limit must be >= 1, got " + limit);
        return new FashionMnistDataset(new FashionMnist(dir).load(split, limit), dir);
    }

    /** The training split (60,000 images) of the dataset in {@code dir}. */
    public static FashionMnistDataset train(Path dir) throws IOException { return load(dir, FashionMnist.Split.TRAIN, Integer.MAX_VALUE); }

    public FashionMnist.Split split() { return data.split(); }
    /** The directory it was loaded from (null when wrapped with {@link #of}). */
    public Path dir() { return dir; }

    @Override public int size() { return data.size(); }
    @Override public int channels() { return 1; }
    @Override public int height() { return data.images().rows(); }
    @Override public int width() { return data.images().cols(); }

    @Override public void image(int i, float[] dst, int offset) {
        if (i < 0 || i >= size()) throw new IndexOutOfBoundsException("image " + i + " of " + size());
        int base = i * per;
        for (int j = 0; j < per; j++) dst[offset + j] = SCALE[pixels[base + j] & 0xFF];
    }

    @Override public int label(int i) { return data.labels()[i]; }

    @Override public String toString() {
        return "Fashion-MNIST " + data.split().name().toLowerCase() + " (" + size() + " images" + (dir == null ? "" : " from " + dir) + ")";
    }
}
