package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;

import java.util.Arrays;

/**
 * Images of a quantized model against the full-precision images sampled from the same noise and labels
 * (ALGORITHMS.md §9 "versus full precision with the same seeds"): per-image MSE, PSNR and SSIM (Gaussian window 11,
 * σ 1.5) on images clamped to [-1, 1] as when written to PNG, the largest absolute difference, and the per-pixel
 * difference map |a − b| that the studio shows as a heatmap. Shared by the studio and the command line.
 */
public final class SampleComparison {
    private SampleComparison() {}

    /**
     * The comparison of one image set with its reference.
     *
     * @param mse    per-image and mean MSE in [-1, 1] units
     * @param psnr   per-image and mean PSNR in dB with data range 2 (infinite for identical images)
     * @param ssim   per-image and mean SSIM of the images mapped to [0, 1]; null for images smaller than the 11 x 11
     *               window (e.g. 8 x 8 latents)
     * @param maxAbs largest |a − b| over all pixels
     */
    public record Result(ImageMetrics.Batch mse, ImageMetrics.Batch psnr, ImageMetrics.Batch ssim, double maxAbs) {}

    /**
     * Compares images with the reference images sampled from the same noise (both [N, C, H, W], clamped to [-1, 1]
     * first).
     * @throws IllegalArgumentException when the shapes differ or a value is not finite (naming which set)
     */
    public static Result compare(Tensor images, Tensor reference) {
        check(images, reference);
        Tensor a = clampUnit(images), b = clampUnit(reference);
        float[] x = a.data(), y = b.data();
        double max = 0;
        for (int i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
        boolean ssimFits = a.dim(2) >= ImageMetrics.SSIM_WINDOW && a.dim(3) >= ImageMetrics.SSIM_WINDOW;
        return new Result(ImageMetrics.mse(a, b), ImageMetrics.psnr(a, b, ImageMetrics.RANGE_SIGNED_UNIT),
                ssimFits ? ImageMetrics.ssimSigned(a, b) : null, max);
    }

    /**
     * The per-pixel difference map: mean over channels of |a − b| of the clamped images, [N, 1, H, W] (in [0, 2]).
     */
    public static Tensor differenceMap(Tensor images, Tensor reference) {
        check(images, reference);
        int n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3), plane = h * w;
        float[] x = images.data(), y = reference.data();
        float[] out = new float[n * plane];
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                int base = (i * c + ch) * plane;
                for (int p = 0; p < plane; p++) out[i * plane + p] += Math.abs(clamp(x[base + p]) - clamp(y[base + p]));
            }
            for (int p = 0; p < plane; p++) out[i * plane + p] /= c;
        }
        return Tensor.of(out, n, 1, h, w);
    }

    /** A copy with every value clamped to [-1, 1]. */
    public static Tensor clampUnit(Tensor x) {
        float[] d = x.data().clone();
        for (int i = 0; i < d.length; i++) d[i] = clamp(d[i]);
        return Tensor.of(d, x.shape());
    }

    private static float clamp(float v) { return v > 1f ? 1f : v < -1f ? -1f : v; }

    private static void check(Tensor a, Tensor b) {
        if (a == null || b == null) throw new IllegalArgumentException("sample comparison: images or reference images missing");
        if (a.rank() != 4) throw new IllegalArgumentException("sample comparison: images must be [N, C, H, W], got " + Arrays.toString(a.shape()));
        if (!a.sameShape(b)) throw new IllegalArgumentException("sample comparison: images are " + Arrays.toString(a.shape())
                + " but the reference images are " + Arrays.toString(b.shape()) + " (sample both with the same count and model)");
        requireFinite("images", a);
        requireFinite("reference images", b);
    }

    private static void requireFinite(String what, Tensor t) {
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) if (!Float.isFinite(d[i])) throw new IllegalArgumentException("sample comparison: " + what
                + " hold a non-finite value (" + d[i] + ") at flat index " + i);
    }
}
