package io.diffquant.engine.train;

/**
 * Seeded, resumable mini-batch order: epoch e visits the dataset in the permutation drawn from
 * (seed, e); batches run across epoch boundaries (no sample is dropped). The position (epoch, cursor) is
 * the whole state.
 */
public final class BatchSampler {
    static final long PURPOSE_DATA = 0x44415441L; // "DATA"

    private final long seed;
    private final int size;
    private long epoch;
    private int cursor;
    private int[] perm;

    public BatchSampler(long seed, int datasetSize) {
        if (datasetSize <= 0) throw new IllegalArgumentException("the dataset is empty");
        this.seed = seed;
        this.size = datasetSize;
    }

    public long epoch() { return epoch; }
    public int cursor() { return cursor; }

    /** Restores a position saved with {@link #epoch()} and {@link #cursor()}. */
    public void seek(long epoch, int cursor) {
        if (epoch < 0 || cursor < 0 || cursor >= size) throw new IllegalArgumentException(
                "data position (epoch " + epoch + ", cursor " + cursor + ") is invalid for a dataset of " + size);
        this.epoch = epoch;
        this.cursor = cursor;
        this.perm = null;
    }

    /** The next batch of dataset indices. */
    public int[] next(int batchSize) {
        int[] out = new int[batchSize];
        for (int i = 0; i < batchSize; i++) {
            if (perm == null) perm = TrainRng.derive(seed, PURPOSE_DATA, epoch).permutation(size);
            out[i] = perm[cursor++];
            if (cursor == size) {
                cursor = 0;
                epoch++;
                perm = null;
            }
        }
        return out;
    }
}
