package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MSE / PSNR / SSIM: closed forms on constant images, and golden values from tools/golden/ssim_reference.py
 * (an independent numpy re-implementation of scikit-image's Gaussian SSIM, cross-checked there with torch conv2d).
 */
class ImageMetricsTest {
    /** Same LCG and image recipe as ssim_reference.py (Knuth's MMIX constants, (state >>> 33) % m). */
    static final class Lcg {
        long state;

        Lcg(long seed) { state = seed; }

        int nextInt(int m) {
            state = state * 6364136223846793005L + 1442695040888963407L;
            return (int) ((state >>> 33) % m);
        }
    }

    /** Integer images 0..255 [2][c*h*w]: a = ramp + noise 0..63, b = a + noise in [-noise, noise], clamped. */
    static int[][] makePair(long seed, int c, int h, int w, int noise) {
        Lcg r = new Lcg(seed);
        int[] a = new int[c * h * w], b = new int[c * h * w];
        for (int ch = 0; ch < c; ch++) for (int y = 0; y < h; y++) for (int x = 0; x < w; x++)
            a[(ch * h + y) * w + x] = (7 * x + 3 * y + 50 * ch + r.nextInt(64)) % 256;
        for (int i = 0; i < a.length; i++) b[i] = Math.min(255, Math.max(0, a[i] + r.nextInt(2 * noise + 1) - noise));
        return new int[][] {a, b};
    }

    static float[] toFloat(int[] k, String convention) {
        float[] f = new float[k.length];
        for (int i = 0; i < k.length; i++) f[i] = switch (convention) {
            case "signed" -> (float) (k[i] / 255.0 * 2.0 - 1.0);
            case "unit" -> (float) (k[i] / 255.0);
            default -> (float) k[i];
        };
        return f;
    }

    record Golden(String name, long seed, int c, int h, int w, int noise, String convention, double range,
                  double ssim, double mse, double psnr, long checksum, double ssimSignedAsUnit) {}

    /** Printed by /usr/bin/python3 tools/golden/ssim_reference.py (numpy 1.24, torch 1.13 cross-check). */
    static final Golden[] GOLDEN = {
            new Golden("gray16_signed", 1, 1, 16, 16, 20, "signed", 2.0,
                    0.84795308948734471, 0.0085926087943926609, 26.679349517109863, 109383, 0.88351486721599437),
            new Golden("rgb28x20_signed", 2, 3, 28, 20, 40, "signed", 2.0,
                    0.69415364436696991, 0.031809634040823383, 20.995013186042911, 985635, 0.74577958629408403),
            new Golden("gray11_signed", 3, 1, 11, 11, 10, "signed", 2.0,
                    0.95686011379569669, 0.0020991292349686894, 32.800208141528955, 39945, 0.95729132446909238),
            new Golden("two32_unit", 4, 2, 32, 32, 5, "unit", 1.0,
                    0.99393472951572459, 0.00014847053994544805, 38.283597120598579, 1110510, Double.NaN),
            new Golden("gray24_uint8", 5, 1, 24, 24, 60, "uint8", 255.0,
                    0.41693960497983967, 1161.9236111111111, 17.479027839008857, 326798, Double.NaN),
    };

    @Test void goldenValuesFromTheNumpyReference() {
        for (Golden g : GOLDEN) {
            int[][] k = makePair(g.seed(), g.c(), g.h(), g.w(), g.noise());
            long sum = 0;
            for (int i = 0; i < k[0].length; i++) sum += k[0][i] + 3L * k[1][i];
            assertEquals(g.checksum(), sum, g.name() + ": images differ from the Python script's");
            float[] a = toFloat(k[0], g.convention()), b = toFloat(k[1], g.convention());
            assertEquals(g.ssim(), ImageMetrics.ssim(a, b, g.c(), g.h(), g.w(), g.range()), 1e-6, g.name() + " SSIM");
            // the engine works in double like the reference: in fact they agree far below the contract's 1e-6
            assertEquals(g.ssim(), ImageMetrics.ssim(a, b, g.c(), g.h(), g.w(), g.range()), 1e-12, g.name() + " SSIM (double)");
            assertEquals(g.mse(), ImageMetrics.mse(a, b), 1e-6 * g.mse(), g.name() + " MSE");
            assertEquals(g.psnr(), ImageMetrics.psnr(a, b, g.range()), 1e-6, g.name() + " PSNR");
            // and through the batch API
            Tensor ta = Tensor.of(a, 1, g.c(), g.h(), g.w()), tb = Tensor.of(b, 1, g.c(), g.h(), g.w());
            assertEquals(g.ssim(), ImageMetrics.ssim(ta, tb, g.range()).mean(), 1e-12, g.name() + " batch SSIM");
            assertEquals(g.psnr(), ImageMetrics.psnr(ta, tb, g.range()).perImage()[0], 1e-6, g.name() + " batch PSNR");
            if (g.convention().equals("signed")) {
                assertEquals(g.ssimSignedAsUnit(), ImageMetrics.ssimSigned(ta, tb).mean(), 1e-6, g.name() + " ssimSigned");
                assertEquals(g.ssimSignedAsUnit(), ImageMetrics.ssimSigned(a, b, g.c(), g.h(), g.w()), 1e-12, g.name());
            }
        }
    }

    @Test void identicalImages() {
        int[][] k = makePair(7, 3, 16, 16, 9);
        float[] a = toFloat(k[0], "signed");
        assertEquals(0.0, ImageMetrics.mse(a, a.clone()));
        assertEquals(Double.POSITIVE_INFINITY, ImageMetrics.psnr(a, a.clone(), ImageMetrics.RANGE_SIGNED_UNIT));
        assertEquals(1.0, ImageMetrics.ssim(a, a.clone(), 3, 16, 16, ImageMetrics.RANGE_SIGNED_UNIT), 1e-15);
    }

    @Test void constantImagesWithAnOffsetHaveClosedForms() {
        // a ≡ u, b ≡ u + δ: MSE = δ², PSNR = 10 log10(R² / δ²); all local variances vanish, so the contrast-structure
        // factor is C2 / C2 = 1 and SSIM = (2 u (u + δ) + C1) / (u² + (u + δ)² + C1) with C1 = (0.01 R)².
        double[][] cases = {{-0.5, 0.25, 2.0}, {0.1, 0.05, 1.0}, {100, 20, 255}, {0, 0.5, 2.0}};
        for (double[] cs : cases) {
            float u = (float) cs[0], v = (float) (cs[0] + cs[1]);
            double delta = (double) v - u, range = cs[2];
            float[] a = new float[2 * 13 * 17], b = new float[a.length];
            java.util.Arrays.fill(a, u);
            java.util.Arrays.fill(b, v);
            double c1 = Math.pow(0.01 * range, 2);
            double ssim = (2.0 * u * v + c1) / ((double) u * u + (double) v * v + c1);
            assertEquals(delta * delta, ImageMetrics.mse(a, b), 1e-15 * Math.max(1, delta * delta));
            assertEquals(10 * Math.log10(range * range / (delta * delta)), ImageMetrics.psnr(a, b, range), 1e-12);
            assertEquals(ssim, ImageMetrics.ssim(a, b, 2, 13, 17, range), 1e-12, "u=" + u + " δ=" + delta);
        }
        // PSNR of [-1, 1] images with range 2 equals PSNR of the same images mapped to [0, 1] with range 1
        float[] a = {-1f, 0f, 0.5f, 1f}, b = {-0.5f, 0f, 0.25f, 0.75f};
        float[] a01 = new float[4], b01 = new float[4];
        for (int i = 0; i < 4; i++) {
            a01[i] = (a[i] + 1) / 2;
            b01[i] = (b[i] + 1) / 2;
        }
        // squared errors 0.25, 0, 0.0625, 0.0625 -> MSE 0.09375
        assertEquals(0.09375, ImageMetrics.mse(a, b), 0);
        assertEquals(0.09375 / 4, ImageMetrics.mse(a01, b01), 0);
        assertEquals(10 * Math.log10(4 / 0.09375), ImageMetrics.psnr(a, b, 2), 1e-12);
        assertEquals(ImageMetrics.psnr(a, b, 2), ImageMetrics.psnr(a01, b01, 1), 1e-12);
    }

    @Test void ssimIsScaleButNotShiftInvariant() {
        // the same integer images as 0..255 (range 255), [0, 1] (range 1): equal SSIM up to the float32 rounding of
        // k / 255; as [-1, 1] with range 2 the luminance term changes (it is not shift invariant), and ssimSigned,
        // which maps [-1, 1] to [0, 1], gives the [0, 1] value back
        int[][] k = makePair(8, 1, 20, 20, 30);
        double s255 = ImageMetrics.ssim(toFloat(k[0], "uint8"), toFloat(k[1], "uint8"), 1, 20, 20, ImageMetrics.RANGE_UINT8);
        double s1 = ImageMetrics.ssim(toFloat(k[0], "unit"), toFloat(k[1], "unit"), 1, 20, 20, ImageMetrics.RANGE_UNIT);
        float[] sa = toFloat(k[0], "signed"), sb = toFloat(k[1], "signed");
        double s2 = ImageMetrics.ssim(sa, sb, 1, 20, 20, ImageMetrics.RANGE_SIGNED_UNIT);
        assertEquals(s255, s1, 1e-6);
        assertTrue(Math.abs(s255 - s2) > 1e-3, "SSIM of [-1, 1] data differs: " + s2 + " vs " + s255);
        assertEquals(s255, ImageMetrics.ssimSigned(sa, sb, 1, 20, 20), 1e-6);
        Tensor ta = Tensor.of(sa, 1, 1, 20, 20), tb = Tensor.of(sb, 1, 1, 20, 20);
        assertEquals(s255, ImageMetrics.ssim(ImageMetrics.toUnitScale(ta), ImageMetrics.toUnitScale(tb), 1).mean(), 1e-6);
        // toUint8Scale maps [-1, 1] back to the integers exactly as ImageGrid writes PNGs
        float[] back = ImageMetrics.toUint8Scale(ta).data();
        for (int i = 0; i < back.length; i++) assertEquals(k[0][i], back[i], 0.0);
        assertEquals(s255, ImageMetrics.ssim(ImageMetrics.toUint8Scale(ta), ImageMetrics.toUint8Scale(tb), 255).mean(), 1e-12);
    }

    @Test void batchesGivePerImageValuesAndTheirMean() {
        int c = 2, h = 12, w = 14, per = c * h * w;
        float[] a = new float[3 * per], b = new float[3 * per];
        double[] ssim = new double[3], mse = new double[3], psnr = new double[3];
        for (int n = 0; n < 3; n++) {
            int[][] k = makePair(20 + n, c, h, w, 10 + 20 * n);
            float[] fa = toFloat(k[0], "signed"), fb = toFloat(k[1], "signed");
            System.arraycopy(fa, 0, a, n * per, per);
            System.arraycopy(fb, 0, b, n * per, per);
            ssim[n] = ImageMetrics.ssim(fa, fb, c, h, w, 2);
            mse[n] = ImageMetrics.mse(fa, fb);
            psnr[n] = ImageMetrics.psnr(fa, fb, 2);
        }
        Tensor ta = Tensor.of(a, 3, c, h, w), tb = Tensor.of(b, 3, c, h, w);
        ImageMetrics.Batch s = ImageMetrics.ssim(ta, tb, 2), m = ImageMetrics.mse(ta, tb), p = ImageMetrics.psnr(ta, tb, 2);
        assertArrayEquals(ssim, s.perImage(), 0);
        assertArrayEquals(mse, m.perImage(), 0);
        assertArrayEquals(psnr, p.perImage(), 0);
        assertEquals((ssim[0] + ssim[1] + ssim[2]) / 3, s.mean(), 1e-15);
        assertEquals((psnr[0] + psnr[1] + psnr[2]) / 3, p.mean(), 1e-12);
        assertTrue(ssim[0] > ssim[1] && ssim[1] > ssim[2], "more noise, lower SSIM");
        assertEquals(3, s.size());
    }

    @Test void rejectsBadInput() {
        Tensor a = Tensor.zeros(2, 1, 16, 16), b = Tensor.zeros(2, 1, 16, 15);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImageMetrics.ssim(a, b, 2));
        assertTrue(e.getMessage().contains("differ in shape"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> ImageMetrics.ssim(Tensor.zeros(1, 1, 10, 30), Tensor.zeros(1, 1, 10, 30), 2));
        assertTrue(e.getMessage().contains("at least 11 x 11"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ImageMetrics.psnr(a, a, 0));
        assertTrue(e.getMessage().contains("data range"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ImageMetrics.ssim(Tensor.zeros(1, 16, 16), Tensor.zeros(1, 16, 16), 2));
        assertTrue(e.getMessage().contains("[N, C, H, W]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ImageMetrics.ssim(new float[10], new float[10], 1, 11, 11, 2));
        assertTrue(e.getMessage().contains("121"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ImageMetrics.mse(new float[3], new float[4]));
    }
}
