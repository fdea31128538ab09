package io.diffquant.engine.diffusion;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * DDIM trajectories against ADM's own sampler code (facebookresearch/DiT diffusion/, run by
 * tools/diffusion/adm_ddim_parity.py with an analytic fake model): respacing, timestep map, float32 step arithmetic
 * and CFG must reproduce PyTorch's trajectories to float32 rounding.
 */
class DdimParityTest {

    /** The fake model of the generator script, same float32 operation order. */
    private static Denoiser fake(boolean learnSigma) {
        return (x, t, y) -> {
            int n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3), per = c * plane;
            int oc = learnSigma ? 2 * c : c;
            Tensor out = Tensor.zeros(n, oc, x.dim(2), x.dim(3));
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < per; j++) {
                    float xv = x.data()[i * per + j];
                    float e = 0.5f * xv + 0.001f * t[i];
                    if (y != null) e = e + 0.01f * (float) y[i];
                    out.data()[i * oc * plane + j] = e;
                    if (learnSigma) {
                        float v = 0.3f * xv + 0.0005f * t[i];
                        v = Math.max(-1f, Math.min(1f, v - 0.2f));
                        out.data()[i * oc * plane + per + j] = v;
                    }
                }
            }
            return out;
        };
    }

    private record Case(String name, String respacing, int[] shape, boolean learnSigma, GuidanceMode cfg, int[] labels,
                        boolean clip, int steps) {}

    private static final List<Case> CASES = List.of(
            new Case("cfg_all", "ddim10", new int[] {2, 4, 4, 4}, true, GuidanceMode.ALL_CHANNELS, new int[] {3, 7}, false, 10),
            new Case("cfg_dit", "ddim25", new int[] {2, 4, 4, 4}, true, GuidanceMode.DIT_COMPATIBLE, new int[] {1, 0}, false, 25),
            new Case("uncond", "10", new int[] {2, 3, 4, 4}, false, null, null, true, 10));

    @Test
    void ddimMatchesAdmTrajectories() throws IOException {
        ByteBuffer buf;
        try (InputStream in = DdimParityTest.class.getResourceAsStream("/diffusion/adm_ddim_parity.bin")) {
            assertNotNull(in, "test resource diffusion/adm_ddim_parity.bin");
            buf = ByteBuffer.wrap(in.readAllBytes()).order(ByteOrder.LITTLE_ENDIAN);
        }
        for (Case c : CASES) {
            int[] s = c.shape();
            Tensor noise = read(buf, s);
            var b = SampleRequest.builder(fake(c.learnSigma()), s[0], s[1], s[2], s[3]).learnSigma(c.learnSigma())
                    .respacing(c.respacing()).ddim(0).clipDenoised(c.clip()).initialNoise(noise);
            if (c.cfg() != null) b.labels(c.labels()).cfg(4.0, c.cfg(), 10);
            SamplingResult res = Sampling.runToEnd(b.build());
            assertEquals(c.steps(), res.trajectory().size(), c.name());
            double worst = 0;
            for (int k = 0; k < c.steps(); k++) {
                Tensor ref = read(buf, s);
                Tensor got = res.trajectory().get(k);
                for (int j = 0; j < ref.size(); j++) {
                    double d = Math.abs(ref.data()[j] - got.data()[j]);
                    worst = Math.max(worst, d / Math.max(1, Math.abs(ref.data()[j])));
                }
            }
            // the float32 operation order follows ADM, so the trajectories agree to (about) the last bit
            assertTrue(worst <= 1e-6, c.name() + ": worst relative difference " + worst);
        }
        assertEquals(0, buf.remaining(), "whole reference file consumed");
    }

    private static Tensor read(ByteBuffer buf, int[] shape) {
        Tensor t = Tensor.zeros(shape);
        for (int i = 0; i < t.size(); i++) t.data()[i] = buf.getFloat();
        return t;
    }
}
