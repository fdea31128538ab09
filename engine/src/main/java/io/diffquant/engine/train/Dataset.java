package io.diffquant.engine.train;

import io.diffquant.engine.tensor.Tensor;

/** Training images (NCHW, values in [-1, 1]) with optional integer labels, addressed by index. */
public interface Dataset {
    int size();
    int channels();
    int height();
    int width();

    /** Copies image i ([C, H, W], row-major) into dst at offset. */
    void image(int i, float[] dst, int offset);

    /** Label of image i, or -1 for unlabelled data. */
    int label(int i);

    default int imageSize() { return channels() * height() * width(); }

    /** An in-memory dataset over a [N, C, H, W] tensor and labels (null for unlabelled). */
    static Dataset of(Tensor images, int[] labels) {
        if (images.rank() != 4) throw new IllegalArgumentException("dataset images must be [N, C, H, W], got " + images);
        int n = images.dim(0);
        if (labels != null && labels.length != n) throw new IllegalArgumentException(
                "dataset has " + n + " images but " + labels.length + " labels");
        int c = images.dim(1), h = images.dim(2), w = images.dim(3), per = c * h * w;
        float[] data = images.data();
        int[] lab = labels == null ? null : labels.clone();
        return new Dataset() {
            @Override public int size() { return n; }
            @Override public int channels() { return c; }
            @Override public int height() { return h; }
            @Override public int width() { return w; }
            @Override public void image(int i, float[] dst, int offset) { System.arraycopy(data, i * per, dst, offset, per); }
            @Override public int label(int i) { return lab == null ? -1 : lab[i]; }
        };
    }
}
