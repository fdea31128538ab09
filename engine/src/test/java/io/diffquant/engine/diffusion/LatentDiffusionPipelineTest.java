package io.diffquant.engine.diffusion;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The latent pipeline on the small golden DiT and VAE, and the ImageNet class names. */
class LatentDiffusionPipelineTest {
    static Path golden(String name) throws Exception {
        return Path.of(LatentDiffusionPipelineTest.class.getClassLoader().getResource("golden/" + name).toURI());
    }

    @Test void samplesLatentsWithTheSamplerThenDecodesThemScaled() throws Exception {
        LatentDiffusionPipeline p = LatentDiffusionPipeline.load(golden("dit-small"), golden("vae-small"));
        assertEquals(8, p.latentSize());
        assertEquals(32, p.imageSize());
        SampleRequest req = p.request(new int[] {3, 7}, 4.0, "ddim", 10, 42).build();
        assertEquals("ddim10", req.respacing());
        assertEquals(GuidanceMode.DIT_COMPATIBLE, req.guidance().mode());
        LatentDiffusionPipeline.Result r = p.sample(req);
        assertArrayEquals(new int[] {2, 4, 8, 8}, r.latents().shape());
        assertArrayEquals(new int[] {2, 3, 32, 32}, r.images().shape());
        // the latents are exactly those of the sampler run on its own, the images the VAE decode of latents / 0.13025
        Tensor direct = Sampling.runToEnd(req, false).samples();
        assertArrayEquals(direct.data(), r.latents().data(), 0f);
        AutoencoderKL vae = p.vae();
        Tensor z = Tensor.zeros(r.latents().shape());
        for (int i = 0; i < z.size(); i++) z.data()[i] = r.latents().data()[i] / 0.13025f;
        Tensor want = vae.decodeRaw(z);
        double err = 0;
        for (int i = 0; i < want.size(); i++) err = Math.max(err, Math.abs(want.data()[i] - r.images().data()[i]));
        assertTrue(err < 1e-5, "decode = decodeRaw(latents / scaling_factor): " + err);
        assertArrayEquals(new int[] {3, 7}, r.labels());
    }

    @Test void ddpmUsesTwoHundredFiftyRespacedSteps() throws Exception {
        DiffusionModel dit = ModelFolder.load(golden("dit-small")).model();
        LatentDiffusionPipeline p = new LatentDiffusionPipeline(dit, AutoencoderKL.load(golden("vae-small")));
        SampleRequest req = p.request(new int[] {1}, 1.0, "ddpm", 250, 0).build();
        assertEquals("250", req.respacing());
        SamplingRun run = Sampling.start(req);
        assertEquals(250, run.totalSteps());
        assertTrue(req.sampler() instanceof DdpmSampler && req.learnSigma() && req.guidance() == null);
        assertEquals("600", LatentDiffusionPipeline.respacing("ddim", 600));   // no integer stride gives exactly 600
        assertThrows(IllegalArgumentException.class, () -> p.request(new int[] {10}, 1.0, "ddim", 10, 0));
        assertThrows(IllegalArgumentException.class, () -> p.request(null, 1.0, "ddim", 10, 0));
    }

    @Test void imageNetNamesAtWellKnownIndices() {
        assertEquals(1000, ImageNetClasses.count());
        assertEquals("tench", ImageNetClasses.name(0));
        assertEquals("goldfish", ImageNetClasses.name(1));
        assertEquals("golden retriever", ImageNetClasses.name(207));
        assertEquals("tabby", ImageNetClasses.name(281));
        assertEquals("giant panda", ImageNetClasses.name(388));
        assertEquals("balloon", ImageNetClasses.name(417));
        assertEquals("volcano", ImageNetClasses.name(980));
        assertEquals("toilet tissue", ImageNetClasses.name(999));
        assertEquals("flamingo", ImageNetClasses.name(130));
        assertEquals("Siberian husky", ImageNetClasses.name(250));
        assertEquals("cheeseburger", ImageNetClasses.name(933));
        assertEquals(207, ImageNetClasses.parse("Golden Retriever"));
        assertEquals(88, ImageNetClasses.parse("88"));
        assertEquals(134, ImageNetClasses.parse("crane"));
        assertEquals("crane", ImageNetClasses.name(517));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImageNetClasses.parse("panda"));
        assertTrue(e.getMessage().contains("giant panda") && e.getMessage().contains("lesser panda"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ImageNetClasses.name(1000));
    }
}
