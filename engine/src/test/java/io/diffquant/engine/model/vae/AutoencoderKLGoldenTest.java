package io.diffquant.engine.model.vae;

import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;

import static io.diffquant.engine.model.vae.VaeTesting.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Parity with the PyTorch re-implementation of diffusers' AutoencoderKL (tools/golden/torch_vae.py) on the random
 * vae-small folder (block_out_channels [8, 16, 16], layers_per_block 1, norm_num_groups 4, scaling_factor 0.13025):
 * encoder moments, posterior mean/logvar/sample, decoder (scaled and raw, square and non-square), fp32, max abs diff
 * <= 1e-4 (golden/README tolerance for one forward call).
 */
class AutoencoderKLGoldenTest {
    static final float TOL = 1e-4f;
    static AutoencoderKL vae;
    static Map<String, Tensor> io;

    @BeforeAll
    static void load() throws IOException {
        vae = AutoencoderKL.load(smallFolder());
        io = readAll(smallFolder().resolve("io.safetensors"));
    }

    @Test
    void configIsReadFromTheFolder() {
        AutoencoderKLConfig c = vae.config();
        assertEquals(java.util.List.of(8, 16, 16), c.blockOutChannels());
        assertEquals(1, c.layersPerBlock());
        assertEquals(4, c.normNumGroups());
        assertEquals(0.13025f, vae.scalingFactor());
        assertEquals(0f, vae.shiftFactor());
        assertEquals(4, vae.downsampleFactor());
        assertEquals(62463, vae.parameterCount(), "parameters of vae-small (printed by make_golden_vae.py)");
    }

    @Test
    void decoderMatchesPyTorch() {
        Tensor out = vae.decode(io.get("latents"));
        assertArrayEquals(new int[] {2, 3, 32, 32}, out.shape());
        assertTrue(maxAbs(io.get("decoded")) > 0.5f, "golden output is not trivial");
        assertClose(io.get("decoded"), out, TOL, "decode(latents) = decodeRaw(latents / scaling_factor)");
        // (a second run may differ in the last bits: the vectorised kernels round differently once JIT-compiled)
        assertClose(out, vae.decodeScaled(io.get("latents")), 1e-5f, "decodeScaled is decode");
    }

    @Test
    void decoderMatchesPyTorchOnNonSquareLatents() {
        Tensor out = vae.decode(io.get("latents_rect"));
        assertArrayEquals(new int[] {1, 3, 12, 20}, out.shape());
        assertClose(io.get("decoded_rect"), out, TOL, "decode of a 3x5 latent");
    }

    @Test
    void rawDecoderSkipsTheScaling() {
        Tensor out = vae.decodeRaw(io.get("mean"));
        assertClose(io.get("recon_mean"), out, TOL, "decodeRaw(mean)");
        // and decode() of the scaled mean is the same image up to the scale/unscale rounding
        assertClose(io.get("recon_mean"), vae.decode(vae.scaleLatents(io.get("mean"))), TOL, "decode(scale(mean))");
    }

    @Test
    void encoderMatchesPyTorch() {
        Tensor images = io.get("images");
        Tensor moments = vae.moments(images);
        assertArrayEquals(new int[] {2, 8, 8, 8}, moments.shape());
        assertClose(io.get("moments"), moments, TOL, "quant_conv(encoder(images))");
        DiagonalGaussian post = vae.encode(images);
        assertClose(io.get("mean"), post.mean(), TOL, "posterior mean");
        assertClose(io.get("logvar"), post.logvar(), TOL, "posterior logvar");
        // the sample formula with the golden noise: mean + exp(0.5 logvar) * noise
        assertClose(io.get("sample"), post.sample(io.get("noise")), TOL, "posterior sample");
    }

    @Test
    void encodeMeanAndSampleAreInDiffusionSpace() {
        Tensor images = io.get("images");
        float sf = vae.scalingFactor();
        Tensor mean = io.get("mean");
        Tensor em = vae.encodeMean(images);
        for (int i = 0; i < em.size(); i++) assertEquals(mean.data()[i] * sf, em.data()[i], 1e-4f * sf + 1e-6f, "encodeMean[" + i + "]");

        long seed = 1234;
        Tensor es = vae.encodeSample(images, seed);
        DiagonalGaussian post = vae.encode(images);
        Tensor noise = DiagonalGaussian.noise(seed, 2, 4, 8, 8);
        Tensor expect = vae.scaleLatents(post.sample(noise));
        assertClose(expect, es, 1e-5f, "encodeSample = scale(mean + std * seeded noise)");
        assertClose(post.sample(seed), post.sample(seed), 0f, "same seed, same sample");
        assertClose(post.sample(noise), post.sample(seed), 0f, "sample(seed) uses DiagonalGaussian.noise(seed, shape)");
        assertTrue(maxAbsDiff(es, vae.encodeSample(images, seed + 1)) > 1e-3f, "another seed, another sample");
        // batch independence: batch element i always uses noise sample i, so image 0 alone gets the same sample
        Tensor first = vae.encodeSample(images.sliceRows(0, 1), seed);
        assertClose(es.sliceRows(0, 1), first, TOL, "sample of image 0 does not depend on the batch");
    }

    @Test
    void slowTwinGivesTheSameResults() {
        try {
            vae.setFastPaths(false);
            assertClose(io.get("decoded"), vae.decode(io.get("latents")), TOL, "decode, fast paths off");
            assertClose(io.get("moments"), vae.moments(io.get("images")), TOL, "moments, fast paths off");
        } finally {
            vae.setFastPaths(true);
        }
    }

    @Test
    void legacyAttentionNamesLoad() throws IOException {
        Map<String, Tensor> sd = readAll(smallFolder().resolve(AutoencoderKL.WEIGHTS));
        Map<String, Tensor> old = new LinkedHashMap<>();
        int renamed = 0;
        for (var e : sd.entrySet()) {
            String k = e.getKey();
            String o = k.replace(".attentions.0.to_q.", ".attentions.0.query.").replace(".attentions.0.to_k.", ".attentions.0.key.")
                    .replace(".attentions.0.to_v.", ".attentions.0.value.").replace(".attentions.0.to_out.0.", ".attentions.0.proj_attn.");
            if (!o.equals(k)) renamed++;
            old.put(o, e.getValue());
        }
        assertEquals(16, renamed, "2 mid blocks x 4 projections x (weight, bias)");
        AutoencoderKL legacy = new AutoencoderKL(vae.config());
        legacy.loadStateDict(old, "legacy.safetensors");
        assertClose(io.get("decoded"), legacy.decode(io.get("latents")), TOL, "decode with legacy-named weights");

        // both names of the same tensor: rejected, naming it
        old.put("decoder.mid_block.attentions.0.to_q.weight", sd.get("decoder.mid_block.attentions.0.to_q.weight"));
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class,
                () -> new AutoencoderKL(vae.config()).loadStateDict(old, "both.safetensors"));
        assertTrue(ex.getMessage().contains("both.safetensors") && ex.getMessage().contains("decoder.mid_block.attentions.0.to_q.weight"),
                ex.getMessage());
    }

    @Test
    void legacyRenameOnlyTouchesAttentionProjections() {
        assertEquals("encoder.mid_block.attentions.0.to_q.weight", AutoencoderKL.renameLegacy("encoder.mid_block.attentions.0.query.weight"));
        assertEquals("decoder.mid_block.attentions.0.to_out.0.bias", AutoencoderKL.renameLegacy("decoder.mid_block.attentions.0.proj_attn.bias"));
        assertEquals("decoder.mid_block.attentions.0.group_norm.weight", AutoencoderKL.renameLegacy("decoder.mid_block.attentions.0.group_norm.weight"));
        assertEquals("decoder.mid_block.resnets.0.key.weight", AutoencoderKL.renameLegacy("decoder.mid_block.resnets.0.key.weight"));
        assertEquals("decoder.mid_block.attentions.x.key.weight", AutoencoderKL.renameLegacy("decoder.mid_block.attentions.x.key.weight"));
        assertEquals("decoder.mid_block.attentions.0.query.scale", AutoencoderKL.renameLegacy("decoder.mid_block.attentions.0.query.scale"));
    }
}
