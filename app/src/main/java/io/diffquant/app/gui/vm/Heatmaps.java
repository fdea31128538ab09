package io.diffquant.app.gui.vm;

import io.diffquant.engine.tensor.Tensor;

import java.awt.image.BufferedImage;

/**
 * Renders difference maps ({@code SampleComparison.differenceMap}, [N, 1, H, W] values >= 0) as colour grids with the
 * same geometry as {@link DisplayImages#grid} (so they line up with the sample grids): a perceptual dark-to-bright
 * colour scale (black, purple, orange, pale yellow; like matplotlib's "inferno"), 0 at black and {@code max} at the top.
 */
public final class Heatmaps {
    /** Colour scale control points (r, g, b) at 0, 1/4, 1/2, 3/4, 1. */
    private static final int[][] STOPS = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};

    private Heatmaps() {}

    /** RGB of a value in [0, 1] on the colour scale (clamped). */
    public static int rgb(double v) {
        double x = Double.isNaN(v) ? 0 : Math.max(0, Math.min(1, v)) * (STOPS.length - 1);
        int i = Math.min(STOPS.length - 2, (int) Math.floor(x));
        double f = x - i;
        int r = (int) Math.round(STOPS[i][0] + f * (STOPS[i + 1][0] - STOPS[i][0]));
        int g = (int) Math.round(STOPS[i][1] + f * (STOPS[i + 1][1] - STOPS[i][1]));
        int b = (int) Math.round(STOPS[i][2] + f * (STOPS[i + 1][2] - STOPS[i][2]));
        return (r << 16) | (g << 8) | b;
    }

    /** Largest value of a map (0 for an empty or all-zero map). */
    public static double max(Tensor map) {
        double m = 0;
        for (float v : map.data()) if (v > m) m = v;
        return m;
    }

    /** The grid of a difference map [N, 1, H, W] with values scaled by 1 / max (max <= 0: all black). */
    public static BufferedImage grid(Tensor map, double max) {
        if (map.rank() != 4 || map.dim(1) != 1) throw new IllegalArgumentException("difference map must be [N, 1, H, W], got " + map);
        int n = map.dim(0), h = map.dim(2), w = map.dim(3), pad = 1;
        int cols = Math.max(1, Math.min(DisplayImages.columnsFor(n), n));
        int rows = (n + cols - 1) / cols;
        BufferedImage img = new BufferedImage(cols * (w + pad) + pad, rows * (h + pad) + pad, BufferedImage.TYPE_INT_RGB);
        float[] d = map.data();
        double scale = max > 0 ? 1.0 / max : 0;
        for (int i = 0; i < n; i++) {
            int ox = pad + (i % cols) * (w + pad), oy = pad + (i / cols) * (h + pad);
            for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) img.setRGB(ox + x, oy + y, rgb(d[(i * h + y) * w + x] * scale));
        }
        return img;
    }

    /** A horizontal colour bar (legend) of the given size. */
    public static BufferedImage colorBar(int width, int height) {
        BufferedImage img = new BufferedImage(Math.max(1, width), Math.max(1, height), BufferedImage.TYPE_INT_RGB);
        for (int x = 0; x < img.getWidth(); x++) {
            int c = rgb(img.getWidth() == 1 ? 0 : (double) x / (img.getWidth() - 1));
            for (int y = 0; y < img.getHeight(); y++) img.setRGB(x, y, c);
        }
        return img;
    }
}
