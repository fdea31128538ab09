package io.diffquant.engine.metrics;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SampleComparison on hand-computed cases. */
class SampleComparisonTest {
    @Test void differenceMapIsTheChannelMeanOfClampedAbsoluteDifferences() {
        // 1 image, 2 channels, 1 x 2 pixels
        Tensor a = Tensor.of(new float[] {0.5f, 3f, -0.5f, 0f}, 1, 2, 1, 2);
        Tensor b = Tensor.of(new float[] {0f, 1f, 0.5f, -2f}, 1, 2, 1, 2);
        Tensor d = SampleComparison.differenceMap(a, b);
        assertArrayEquals(new int[] {1, 1, 1, 2}, d.shape());
        // pixel 0: (|0.5-0| + |-0.5-0.5|) / 2 = 0.75; pixel 1: (|1-1| + |0-(-1)|) / 2 = 0.5 (3 and -2 clamp to 1 and -1)
        assertArrayEquals(new float[] {0.75f, 0.5f}, d.data(), 1e-7f);
    }

    @Test void constantOffsetGivesKnownMsePsnrAndMax() {
        int n = 2, h = 12, w = 12;
        float[] x = new float[n * h * w], y = new float[n * h * w];
        for (int i = 0; i < x.length; i++) { x[i] = 0.25f; y[i] = i < h * w ? 0.25f : -0.25f; }
        SampleComparison.Result r = SampleComparison.compare(Tensor.of(x, n, 1, h, w), Tensor.of(y, n, 1, h, w));
        assertEquals(0.0, r.mse().perImage()[0]);
        assertEquals(0.25, r.mse().perImage()[1], 1e-12);                 // (0.5)^2
        assertTrue(Double.isInfinite(r.psnr().perImage()[0]));
        assertEquals(10 * Math.log10(4 / 0.25), r.psnr().perImage()[1], 1e-9);
        assertEquals(0.5, r.maxAbs(), 1e-7);
        assertEquals(1.0, r.ssim().perImage()[0], 1e-12);
    }

    @Test void smallImagesHaveNoSsimAndBadInputIsNamed() {
        Tensor a = Tensor.zeros(1, 4, 8, 8);
        assertNull(SampleComparison.compare(a, a).ssim());
        var e = assertThrows(IllegalArgumentException.class, () -> SampleComparison.compare(a, Tensor.zeros(2, 4, 8, 8)));
        assertTrue(e.getMessage().contains("[1, 4, 8, 8]") && e.getMessage().contains("[2, 4, 8, 8]"), e.getMessage());
        Tensor nan = Tensor.zeros(1, 4, 8, 8);
        nan.data()[5] = Float.NaN;
        e = assertThrows(IllegalArgumentException.class, () -> SampleComparison.differenceMap(a, nan));
        assertTrue(e.getMessage().contains("reference images") && e.getMessage().contains("index 5"), e.getMessage());
    }
}
