package io.diffquant.engine.io;

import io.diffquant.engine.tensor.Tensor;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Images in [-1, 1] (N, C, H, W) to an RGB grid, written to PNG atomically. C = 1 is grey, C = 3 is RGB; other
 * channel counts (e.g. 4-channel latents before VAE decoding) are previewed from their first 3 channels (C >= 3)
 * or their first channel (C = 2).
 */
public final class ImageGrid {
    private ImageGrid() {}

    /** Maps [-1, 1] to 0..255 as torchvision's save_image(normalize=True, value_range=(-1, 1)) does. */
    public static int toByte(float v) {
        float s = (v + 1f) * 0.5f;
        s = Math.max(0f, Math.min(1f, s));
        return (int) Math.min(255f, Math.floor(s * 255f + 0.5f));
    }

    /** A grid with {@code cols} images per row and a {@code pad}-pixel border. */
    public static BufferedImage grid(Tensor images, int cols, int pad) {
        if (images.rank() != 4 || images.dim(1) < 1) throw new IllegalArgumentException(
                "image grid needs N x C x H x W images, got " + images);
        int n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
        cols = Math.max(1, Math.min(cols, n));
        int rows = (n + cols - 1) / cols;
        BufferedImage img = new BufferedImage(cols * (w + pad) + pad, rows * (h + pad) + pad, BufferedImage.TYPE_INT_RGB);
        float[] d = images.data();
        for (int i = 0; i < n; i++) {
            int ox = pad + (i % cols) * (w + pad), oy = pad + (i / cols) * (h + pad);
            for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) {
                int r, g, b;
                if (c < 3) r = g = b = toByte(d[((i * c) * h + y) * w + x]);
                else {
                    r = toByte(d[((i * c) * h + y) * w + x]);
                    g = toByte(d[((i * c + 1) * h + y) * w + x]);
                    b = toByte(d[((i * c + 2) * h + y) * w + x]);
                }
                img.setRGB(ox + x, oy + y, (r << 16) | (g << 8) | b);
            }
        }
        return img;
    }

    public static void writePng(BufferedImage img, Path file) throws IOException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        if (!ImageIO.write(img, "png", bos)) throw new IOException("no PNG writer available for " + file);
        Path dir = file.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
        AtomicFiles.writeBytes(file, bos.toByteArray());
    }
}
