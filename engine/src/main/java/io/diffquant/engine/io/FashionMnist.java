package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * The Fashion-MNIST dataset (Xiao, Rasul, Vollgraf 2017, zalandoresearch/fashion-mnist): 28x28 grey images of ten
 * clothing classes in IDX files, 60000 for training and 10000 for testing. Reads
 * {@code {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]} from a directory, by default the one the Debian package
 * {@code dataset-fashion-mnist} installs.
 */
public final class FashionMnist {
    /** Where the Debian package {@code dataset-fashion-mnist} puts the files. */
    public static final Path DEFAULT_DIR = Path.of("/usr/share/datasets/fashion-mnist");

    /** Class names by label, as in the dataset's README. */
    public static final List<String> CLASS_NAMES = List.of("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot");

    public static final int NUM_CLASSES = 10;
    public static final int SIZE = 28;

    /** The two splits, with their file prefix and official size. */
    public enum Split {
        TRAIN("train", 60000), TEST("t10k", 10000);

        private final String prefix;
        private final int officialSize;

        Split(String prefix, int officialSize) {
            this.prefix = prefix;
            this.officialSize = officialSize;
        }

        public String prefix() { return prefix; }
        public int officialSize() { return officialSize; }
    }

    /** One loaded split: images and their labels (same count, labels in [0, 10)). */
    public record Data(Split split, IdxReader.Images images, int[] labels) {
        public int size() { return labels.length; }

        /** Images [from, to) as a Tensor [n, 1, 28, 28] in [-1, 1] (see {@link IdxReader#toMinusOneOne(int)}). */
        public Tensor imagesMinusOneOne(int from, int to) { return images.toTensorMinusOneOne(from, to); }
    }

    private final Path dir;

    /** The dataset in {@link #DEFAULT_DIR}. */
    public FashionMnist() { this(DEFAULT_DIR); }

    /** The dataset in {@code dir}. */
    public FashionMnist(Path dir) { this.dir = dir; }

    public Path dir() { return dir; }

    /** True if both files of both splits are present. */
    public boolean isAvailable() {
        for (Split s : Split.values()) {
            if (!Files.isRegularFile(imagesFile(s)) || !Files.isRegularFile(labelsFile(s))) return false;
        }
        return true;
    }

    /** The images file of a split: the gzip one if present, else the plain one, else (absent) the gzip name. */
    public Path imagesFile(Split split) { return locate(split.prefix + "-images-idx3-ubyte"); }

    /** The labels file of a split, located like {@link #imagesFile}. */
    public Path labelsFile(Split split) { return locate(split.prefix + "-labels-idx1-ubyte"); }

    private Path locate(String base) {
        Path gz = dir.resolve(base + ".gz");
        if (Files.exists(gz)) return gz;
        Path plain = dir.resolve(base);
        return Files.exists(plain) ? plain : gz;
    }

    /** Loads a whole split. */
    public Data load(Split split) throws IOException { return load(split, Integer.MAX_VALUE); }

    /** Loads the first {@code min(limit, size)} examples of a split. */
    public Data load(Split split, int limit) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new NoSuchFileException(dir.toString(), null,
                    "Fashion-MNIST directory not found (" + IdxReader.DATASET_HINT + ")");
        }
        Path imgFile = imagesFile(split), lblFile = labelsFile(split);
        for (Path p : List.of(imgFile, lblFile)) {
            if (!Files.exists(p)) {
                throw new NoSuchFileException(p.toString(), null, "Fashion-MNIST " + split.name().toLowerCase()
                        + " file not found (" + IdxReader.DATASET_HINT + ")");
            }
        }
        int imageCount = IdxReader.dimensions(imgFile, IdxReader.IMAGES_MAGIC)[0];
        int labelCount = IdxReader.dimensions(lblFile, IdxReader.LABELS_MAGIC)[0];
        if (imageCount != labelCount) {
            throw new IOException(lblFile + ": " + labelCount + " labels but " + imgFile + " has "
                    + imageCount + " images; the two files must have the same count");
        }
        IdxReader.Images images = IdxReader.readImages(imgFile, limit);
        if (images.rows() != SIZE || images.cols() != SIZE) {
            throw new IOException(imgFile + ": Fashion-MNIST images must be " + SIZE + "x" + SIZE + ", found "
                    + images.rows() + "x" + images.cols());
        }
        int[] labels = IdxReader.readLabels(lblFile, limit);
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] >= NUM_CLASSES) {
                throw new IOException(lblFile + ": label " + i + " is " + labels[i] + ", expected 0.." + (NUM_CLASSES - 1));
            }
        }
        return new Data(split, images, labels);
    }
}
