package io.diffquant.engine.metrics;

import io.diffquant.engine.io.ImageGrid;
import io.diffquant.engine.tensor.Parallel;
import io.diffquant.engine.tensor.Tensor;

/**
 * Full-reference image metrics of a quantized model's samples against the full-precision samples from the same
 * seeds (ALGORITHMS.md §9): MSE, PSNR and SSIM (Wang et al. 2004, "Image quality assessment: from error
 * visibility to structural similarity").
 *
 * <p><b>SSIM definition followed.</b> Exactly scikit-image's
 * {@code structural_similarity(x, y, data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
 * channel_axis=0)}, which is also what pytorch-msssim's {@code ssim(X, Y, data_range=R, win_size=11, win_sigma=1.5,
 * K=(0.01, 0.03))} computes (apart from its float32 arithmetic): local statistics are Gaussian-weighted means over an
 * 11 x 11 window (separable 1-D kernel g[k] ∝ exp(-k² / (2 · 1.5²)), k = -5..5, normalised to sum 1), taken only
 * at positions where the window fits inside the image ('valid' filtering; scikit-image filters the whole image
 * with reflection and then crops 5 pixels per side, which leaves exactly these positions);
 * σ_x² = E[x²] - μ_x², σ_xy = E[xy] - μ_x μ_y (population moments); C1 = (0.01 R)², C2 = (0.03 R)²;
 * SSIM map = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)); the SSIM of a channel is the
 * mean of its map and the SSIM of an image is the mean over its channels. All arithmetic is in double. Images must
 * be at least 11 x 11. tools/golden/ssim_reference.py re-implements this definition in numpy (and checks it
 * against a torch conv2d version) to give the golden values of the tests.
 *
 * <p><b>Data range and which images to measure.</b> The engine's images live in [-1, 1]. PSNR is shift invariant:
 * [-1, 1] images with {@link #RANGE_SIGNED_UNIT} = 2 give the same PSNR as the same images mapped to [0, 1] with
 * {@link #RANGE_UNIT} = 1 or to 0..255 with {@link #RANGE_UINT8} = 255 (MSE is not: MSE in [-1, 1] units is 4x the
 * MSE in [0, 1] units). SSIM is only scale invariant: its luminance term (2 μx μy + C1) / (μx² + μy² + C1) assumes
 * non-negative intensities, so SSIM of [-1, 1] data with range 2 differs from the SSIM everybody reports. Measure
 * SSIM of engine images with {@link #ssimSigned} (maps to [0, 1], range 1; equal, up to rounding, to SSIM of 8-bit
 * images with range 255), or on {@link #toUint8Scale} images with {@link #RANGE_UINT8} to reproduce a measurement
 * on saved PNGs (the mapping of {@link ImageGrid}). The product reports SSIM the {@link #ssimSigned} way.
 */
public final class ImageMetrics {
    private ImageMetrics() {}

    /** Data range of images in [-1, 1] (the engine's convention). */
    public static final double RANGE_SIGNED_UNIT = 2.0;
    /** Data range of images in [0, 1]. */
    public static final double RANGE_UNIT = 1.0;
    /** Data range of 8-bit images 0..255. */
    public static final double RANGE_UINT8 = 255.0;

    public static final int SSIM_WINDOW = 11;
    public static final double SSIM_SIGMA = 1.5;
    public static final double SSIM_K1 = 0.01;
    public static final double SSIM_K2 = 0.03;

    private static final double[] KERNEL = gaussianKernel(SSIM_WINDOW, SSIM_SIGMA);

    /** Per-image values over a batch and their mean. */
    public record Batch(double[] perImage, double mean) {
        public int size() { return perImage.length; }

        static Batch of(double[] values) {
            double s = 0;
            for (double v : values) s += v;
            return new Batch(values, values.length == 0 ? Double.NaN : s / values.length);
        }
    }

    /** The normalised 1-D Gaussian window of odd size {@code size} (radius size / 2). */
    public static double[] gaussianKernel(int size, double sigma) {
        if (size < 1 || size % 2 == 0) throw new IllegalArgumentException("SSIM window size must be odd and positive, got " + size);
        if (!(sigma > 0)) throw new IllegalArgumentException("SSIM window sigma must be positive, got " + sigma);
        int r = size / 2;
        double[] g = new double[size];
        double s = 0;
        for (int k = -r; k <= r; k++) {
            g[k + r] = Math.exp(-(double) (k * k) / (2.0 * sigma * sigma));
            s += g[k + r];
        }
        for (int i = 0; i < size; i++) g[i] /= s;
        return g;
    }

    // ------------------------------------------------------------------ single images

    /** Mean squared difference over all elements of two equally long arrays. */
    public static double mse(float[] a, float[] b) {
        return mse(a, 0, b, 0, checkSameLength(a, b));
    }

    /** 10 log10(R² / mse); +infinity for mse = 0. */
    public static double psnrFromMse(double mse, double dataRange) {
        checkRange(dataRange);
        if (!(mse >= 0)) throw new IllegalArgumentException("PSNR: MSE must be >= 0, got " + mse);
        if (mse == 0) return Double.POSITIVE_INFINITY;
        return 10.0 * Math.log10(dataRange * dataRange / mse);
    }

    /** PSNR in dB of two equally long arrays with the given data range. */
    public static double psnr(float[] a, float[] b, double dataRange) {
        return psnrFromMse(mse(a, b), dataRange);
    }

    /**
     * SSIM of one image pair, each stored [channels, height, width] row-major in a float array.
     *
     * @throws IllegalArgumentException if the arrays do not hold channels·height·width values or the image is
     *                                  smaller than the 11 x 11 window
     */
    public static double ssim(float[] a, float[] b, int channels, int height, int width, double dataRange) {
        checkRange(dataRange);
        long n = (long) channels * height * width;
        if (channels < 1 || n != a.length || n != b.length) throw new IllegalArgumentException("SSIM: expected "
                + channels + " x " + height + " x " + width + " = " + n + " values per image, got " + a.length + " and " + b.length);
        checkSsimSize(height, width);
        return ssimImage(a, 0, b, 0, channels, height, width, 1.0, 0.0, dataRange, new SsimScratch(height, width));
    }

    // ------------------------------------------------------------------ batches [N, C, H, W]

    /** Per-image MSE of two [N, C, H, W] (or any [N, ...]) tensors of the same shape, and the mean. */
    public static Batch mse(Tensor a, Tensor b) {
        int n = checkBatch("MSE", a, b, false);
        int per = n == 0 ? 0 : a.size() / n;
        double[] out = new double[n];
        Parallel.forRange(n, 8, (from, to) -> {
            for (int i = from; i < to; i++) out[i] = mse(a.data(), i * per, b.data(), i * per, per);
        });
        return Batch.of(out);
    }

    /**
     * Per-image PSNR and their mean (the usual reporting: mean of per-image PSNRs, not PSNR of the mean MSE).
     * An identical pair gives +infinity, and then the mean is +infinity too.
     */
    public static Batch psnr(Tensor a, Tensor b, double dataRange) {
        checkRange(dataRange);
        double[] m = mse(a, b).perImage();
        double[] out = new double[m.length];
        for (int i = 0; i < m.length; i++) out[i] = psnrFromMse(m[i], dataRange);
        return Batch.of(out);
    }

    /** Per-image SSIM (mean over channels) of two [N, C, H, W] tensors of the same shape, and their mean. */
    public static Batch ssim(Tensor a, Tensor b, double dataRange) {
        return ssimAffine(a, b, 1.0, 0.0, dataRange);
    }

    /**
     * Per-image SSIM of [-1, 1] images measured as [0, 1] images: x -> (x + 1) / 2 (in double) with data range 1.
     * The SSIM the product reports for its samples.
     */
    public static Batch ssimSigned(Tensor a, Tensor b) {
        return ssimAffine(a, b, 0.5, 0.5, RANGE_UNIT);
    }

    /** SSIM of [-1, 1] images a, b stored [channels, height, width], measured as in {@link #ssimSigned(Tensor, Tensor)}. */
    public static double ssimSigned(float[] a, float[] b, int channels, int height, int width) {
        long n = (long) channels * height * width;
        if (channels < 1 || n != a.length || n != b.length) throw new IllegalArgumentException("SSIM: expected "
                + channels + " x " + height + " x " + width + " = " + n + " values per image, got " + a.length + " and " + b.length);
        checkSsimSize(height, width);
        return ssimImage(a, 0, b, 0, channels, height, width, 0.5, 0.5, RANGE_UNIT, new SsimScratch(height, width));
    }

    private static Batch ssimAffine(Tensor a, Tensor b, double scale, double shift, double dataRange) {
        checkRange(dataRange);
        int n = checkBatch("SSIM", a, b, true);
        int c = a.dim(1), h = a.dim(2), w = a.dim(3);
        checkSsimSize(h, w);
        int per = c * h * w;
        double[] out = new double[n];
        Parallel.forRange(n, 1, (from, to) -> {
            SsimScratch s = new SsimScratch(h, w);
            for (int i = from; i < to; i++) {
                out[i] = ssimImage(a.data(), i * per, b.data(), i * per, c, h, w, scale, shift, dataRange, s);
            }
        });
        return Batch.of(out);
    }

    /** Images in [-1, 1] mapped to [0, 1]: (x + 1) / 2. */
    public static Tensor toUnitScale(Tensor signedImages) {
        float[] src = signedImages.data();
        float[] dst = new float[src.length];
        for (int i = 0; i < src.length; i++) dst[i] = (src[i] + 1f) * 0.5f;
        return Tensor.of(dst, signedImages.shape());
    }

    /**
     * Images in [-1, 1] mapped to the 8-bit values 0..255 (as floats) exactly as {@link ImageGrid#toByte} writes
     * them to PNG; measure these with {@link #RANGE_UINT8}.
     */
    public static Tensor toUint8Scale(Tensor signedImages) {
        float[] src = signedImages.data();
        float[] dst = new float[src.length];
        for (int i = 0; i < src.length; i++) dst[i] = ImageGrid.toByte(src[i]);
        return Tensor.of(dst, signedImages.shape());
    }

    // ------------------------------------------------------------------ internals

    private static double mse(float[] a, int offA, float[] b, int offB, int len) {
        if (len == 0) throw new IllegalArgumentException("MSE: empty images");
        double s = 0;
        for (int i = 0; i < len; i++) {
            double d = (double) a[offA + i] - (double) b[offB + i];
            s += d * d;
        }
        return s / len;
    }

    private static int checkSameLength(float[] a, float[] b) {
        if (a == null || b == null) throw new IllegalArgumentException("image metrics: image array is null");
        if (a.length != b.length) throw new IllegalArgumentException(
                "image metrics: images differ in size: " + a.length + " vs " + b.length + " values");
        return a.length;
    }

    private static void checkRange(double dataRange) {
        if (!(dataRange > 0) || Double.isInfinite(dataRange)) throw new IllegalArgumentException(
                "image metrics: data range must be a positive finite number, got " + dataRange);
    }

    private static void checkSsimSize(int h, int w) {
        if (h < SSIM_WINDOW || w < SSIM_WINDOW) throw new IllegalArgumentException("SSIM: images must be at least "
                + SSIM_WINDOW + " x " + SSIM_WINDOW + " for the Gaussian window, got " + h + " x " + w);
    }

    private static int checkBatch(String what, Tensor a, Tensor b, boolean rank4) {
        if (a == null || b == null) throw new IllegalArgumentException(what + ": image tensor is null");
        if (!a.sameShape(b)) throw new IllegalArgumentException(
                what + ": image batches differ in shape: " + a + " vs " + b);
        if (rank4 ? a.rank() != 4 : a.rank() < 2) throw new IllegalArgumentException(
                what + ": expected images [N, C, H, W], got " + a);
        return a.dim(0);
    }

    /** Work arrays of one SSIM computation, reused across images of the same size. */
    private static final class SsimScratch {
        final int h, w, vh, vw;
        final double[] x, y;            // one channel of each image, in double
        final double[][] rows;          // horizontally filtered maps of x, y, x², y², xy, each h x vw

        SsimScratch(int h, int w) {
            this.h = h;
            this.w = w;
            this.vh = h - SSIM_WINDOW + 1;
            this.vw = w - SSIM_WINDOW + 1;
            x = new double[h * w];
            y = new double[h * w];
            rows = new double[5][h * vw];
        }
    }

    /** SSIM of one image pair read as scale · value + shift (in double). */
    private static double ssimImage(float[] a, int offA, float[] b, int offB, int c, int h, int w,
                                    double scale, double shift, double dataRange, SsimScratch s) {
        double sum = 0;
        for (int ch = 0; ch < c; ch++) {
            int base = ch * h * w;
            for (int i = 0; i < h * w; i++) {
                s.x[i] = a[offA + base + i] * scale + shift;
                s.y[i] = b[offB + base + i] * scale + shift;
            }
            sum += ssimChannel(s, dataRange);
        }
        return sum / c;
    }

    private static double ssimChannel(SsimScratch s, double dataRange) {
        int h = s.h, w = s.w, vh = s.vh, vw = s.vw, k = SSIM_WINDOW;
        double[] g = KERNEL;
        double[] x = s.x, y = s.y;
        double[] rx = s.rows[0], ry = s.rows[1], rxx = s.rows[2], ryy = s.rows[3], rxy = s.rows[4];
        // horizontal 'valid' pass of x, y, x², y², xy
        for (int r = 0; r < h; r++) {
            int in = r * w, out = r * vw;
            for (int j = 0; j < vw; j++) {
                double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
                for (int t = 0; t < k; t++) {
                    double gt = g[t], xv = x[in + j + t], yv = y[in + j + t];
                    sx += gt * xv;
                    sy += gt * yv;
                    sxx += gt * xv * xv;
                    syy += gt * yv * yv;
                    sxy += gt * xv * yv;
                }
                rx[out + j] = sx;
                ry[out + j] = sy;
                rxx[out + j] = sxx;
                ryy[out + j] = syy;
                rxy[out + j] = sxy;
            }
        }
        double c1 = SSIM_K1 * dataRange, c2 = SSIM_K2 * dataRange;
        c1 *= c1;
        c2 *= c2;
        double total = 0;
        // vertical 'valid' pass and the SSIM map
        for (int i = 0; i < vh; i++) {
            for (int j = 0; j < vw; j++) {
                double mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
                for (int t = 0; t < k; t++) {
                    int idx = (i + t) * vw + j;
                    double gt = g[t];
                    mx += gt * rx[idx];
                    my += gt * ry[idx];
                    exx += gt * rxx[idx];
                    eyy += gt * ryy[idx];
                    exy += gt * rxy[idx];
                }
                double vx = exx - mx * mx, vy = eyy - my * my, cxy = exy - mx * my;
                double num = (2 * mx * my + c1) * (2 * cxy + c2);
                double den = (mx * mx + my * my + c1) * (vx + vy + c2);
                total += num / den;
            }
        }
        return total / ((double) vh * vw);
    }
}
