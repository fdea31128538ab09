package io.diffquant.engine.tensor;

import io.diffquant.engine.diffusion.SeededNoise;
import io.diffquant.engine.model.vae.DiagonalGaussian;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** VaeOps and the DiagonalGaussian posterior on analytic cases (diffusers vae.py DiagonalGaussianDistribution). */
class VaeOpsTest {

    private static Tensor iota(int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = i;
        return t;
    }

    @Test
    void chunkChannelsSplitsTheChannelAxis() {
        Tensor x = iota(2, 4, 1, 3);
        Tensor[] ab = VaeOps.chunkChannels(x);
        assertArrayEquals(new int[] {2, 2, 1, 3}, ab[0].shape());
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 2; c++)
                for (int w = 0; w < 3; w++) {
                    assertEquals(x.get(n, c, 0, w), ab[0].get(n, c, 0, w));
                    assertEquals(x.get(n, c + 2, 0, w), ab[1].get(n, c, 0, w));
                }
        assertThrows(IllegalArgumentException.class, () -> VaeOps.chunkChannels(iota(1, 3, 2, 2)));
        assertThrows(IllegalArgumentException.class, () -> VaeOps.chunkChannels(iota(6)));
    }

    @Test
    void clampKeepsNaNAndHitsTheBounds() {
        Tensor x = Tensor.of(new float[] {-40f, -30f, -29.5f, 0f, 20f, 25f, Float.NaN, Float.NEGATIVE_INFINITY}, 8);
        Tensor y = VaeOps.clamp(x, VaeOps.LOGVAR_MIN, VaeOps.LOGVAR_MAX);
        assertArrayEquals(new float[] {-30f, -30f, -29.5f, 0f, 20f, 20f, Float.NaN, -30f}, y.data());
        assertThrows(IllegalArgumentException.class, () -> VaeOps.clamp(x, 1f, 0f));
    }

    @Test
    void stdAndSample() {
        float ln2 = (float) Math.log(2);
        Tensor logvar = Tensor.of(new float[] {0f, 2 * ln2, -2 * ln2, -30f}, 4);
        Tensor std = VaeOps.stdFromLogvar(logvar);
        assertEquals(1f, std.data()[0]);
        assertEquals(2f, std.data()[1], 2e-7f);
        assertEquals(0.5f, std.data()[2], 1e-7f);
        assertEquals((float) Math.exp(-15), std.data()[3], 1e-13f);
        Tensor mean = Tensor.of(new float[] {1f, -1f, 3f, 0.25f}, 4);
        Tensor noise = Tensor.of(new float[] {0.5f, 2f, -4f, 1e6f}, 4);
        Tensor s = VaeOps.gaussianSample(mean, std, noise);
        assertEquals(1.5f, s.data()[0]);
        assertEquals(-1f + std.data()[1] * 2f, s.data()[1]);
        assertEquals(3f + std.data()[2] * -4f, s.data()[2]);
        assertEquals(0.25f + std.data()[3] * 1e6f, s.data()[3]);
        assertThrows(IllegalArgumentException.class, () -> VaeOps.gaussianSample(mean, std, Tensor.zeros(3)));
    }

    @Test
    void latentScalingIsTheSdPipelineFormula() {
        Tensor z = Tensor.of(new float[] {1f, -2f, 0.5f, 4f}, 1, 4, 1, 1);
        // no shift: latents = z * sf, z = latents / sf (division, as the pipelines write it)
        float sf = 0.18215f;
        Tensor lat = VaeOps.scaleLatents(z, sf, 0f);
        for (int i = 0; i < 4; i++) assertEquals(z.data()[i] * sf, lat.data()[i]);
        Tensor back = VaeOps.unscaleLatents(lat, sf, 0f);
        for (int i = 0; i < 4; i++) {
            assertEquals(lat.data()[i] / sf, back.data()[i]);
            assertEquals(z.data()[i], back.data()[i], 1e-6f);
        }
        // with a shift (SD3-style): latents = (z - shift) * sf, z = latents / sf + shift
        Tensor lat2 = VaeOps.scaleLatents(z, 0.5f, 0.25f);
        assertArrayEquals(new float[] {0.375f, -1.125f, 0.125f, 1.875f}, lat2.data());
        assertArrayEquals(z.data(), VaeOps.unscaleLatents(lat2, 0.5f, 0.25f).data());
        assertThrows(IllegalArgumentException.class, () -> VaeOps.scaleLatents(z, 0f, 0f));
        assertThrows(IllegalArgumentException.class, () -> VaeOps.unscaleLatents(z, Float.NaN, 0f));
        assertThrows(IllegalArgumentException.class, () -> VaeOps.unscaleLatents(z, 1f, Float.POSITIVE_INFINITY));
    }

    @Test
    void posteriorFromMomentsClampsLogvar() {
        // moments [1, 2, 1, 2]: mean channel [0.5, -0.5], logvar channel [50, -50] -> clamped to 20 / -30
        Tensor moments = Tensor.of(new float[] {0.5f, -0.5f, 50f, -50f}, 1, 2, 1, 2);
        DiagonalGaussian p = DiagonalGaussian.fromMoments(moments);
        assertArrayEquals(new float[] {0.5f, -0.5f}, p.mean().data());
        assertArrayEquals(new float[] {20f, -30f}, p.logvar().data());
        assertEquals((float) Math.exp(10), p.std().data()[0], 1e-2f);
        Tensor s = p.sample(Tensor.of(new float[] {1f, 1f}, 1, 1, 1, 2));
        assertEquals(0.5f + (float) Math.exp(10), s.data()[0], 1e-2f);
        assertEquals(-0.5f + (float) Math.exp(-15), s.data()[1], 1e-7f);
        assertThrows(IllegalArgumentException.class, () -> new DiagonalGaussian(Tensor.zeros(1, 4, 2, 2), Tensor.zeros(1, 4, 2, 3)));
    }

    @Test
    void posteriorNoiseIsStandardNormalAndItsOwnStream() {
        Tensor n = DiagonalGaussian.noise(7, 4, 4, 32, 32);
        double s = 0, s2 = 0;
        for (float v : n.data()) { s += v; s2 += (double) v * v; }
        double mean = s / n.size(), var = s2 / n.size() - mean * mean;
        assertEquals(0.0, mean, 0.03, "mean of 16384 N(0,1) draws");
        assertEquals(1.0, var, 0.05, "variance");
        Tensor initial = new SeededNoise(7).normal(SeededNoise.STREAM_INITIAL, 0, SeededNoise.INITIAL_STEP_KEY, 4, 4, 32, 32);
        assertNotEquals(initial.data()[0], n.data()[0], "not the sampler's x_T noise for the same seed");
        assertArrayEquals(n.sliceRows(1, 2).data(), DiagonalGaussian.noise(7, 4, 4, 32, 32).sliceRows(1, 2).data(), "deterministic");
    }
}
