package io.diffquant.app.gui.vm;

import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;

/**
 * Sample tensors in [-1, 1] to displayable grids through {@link ImageGrid#grid}: 1- and 3-channel images as they
 * are; other channel counts (latents, e.g. 4) show channels 0-2 as RGB (or channel 0 as grey when C = 2).
 */
public final class DisplayImages {
    private DisplayImages() {}

    /** Columns of the grid for n images: ceil(sqrt(n)), a square-ish grid. */
    public static int columnsFor(int n) { return Math.max(1, (int) Math.ceil(Math.sqrt(n))); }

    /** The grid of [N, C, H, W] images with {@link #columnsFor(int)} columns and a 1-pixel border. */
    public static BufferedImage grid(Tensor images) {
        return ImageGrid.grid(displayChannels(images), columnsFor(images.dim(0)), 1);
    }

    /** The tensor restricted to 1 or 3 channels as described in the class comment (a view copy when needed). */
    public static Tensor displayChannels(Tensor images) {
        if (images.rank() != 4) throw new IllegalArgumentException("images must be [N, C, H, W], got " + images);
        int n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
        if (c == 1 || c == 3) return images;
        int keep = c >= 3 ? 3 : 1;
        int plane = h * w;
        float[] src = images.data();
        float[] dst = new float[n * keep * plane];
        for (int i = 0; i < n; i++) System.arraycopy(src, i * c * plane, dst, i * keep * plane, keep * plane);
        return Tensor.of(dst, n, keep, h, w);
    }
}
