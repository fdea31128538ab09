package io.diffquant.engine.train;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.model.unet.UNet2DModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Exact resume for the UNet path of the trainer (the shipped unet-fmnist is trained through it; the DiT path is in
 * {@link TrainingJobTest}): a run interrupted by a checkpoint and resumed exports the same weights file, byte for byte,
 * as the uninterrupted run.
 */
class UNetResumeTest {
    @TempDir Path dir;

    /** An unconditional UNet2DModel on 8x8x1 with one attention level (8 -> 4), 8 channels. */
    static final String TINY_UNET = """
            {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1,
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
             "block_out_channels": [8, 8], "layers_per_block": 1, "attention_head_dim": 4, "norm_num_groups": 4}
            """;

    @Test void interruptedAndResumedUnetRunExportsTheSameWeights() throws IOException {
        Dataset data = TrainingJobTest.bars(48, 5);
        Path cfg = dir.resolve("unet.json");
        Files.writeString(cfg, TINY_UNET);
        TrainingJob.Recipe recipe = new TrainingJob.Recipe(4, 8, 2e-3, 0.01, 0.9, 2, 1.0);
        TrainingJob full = TrainingJob.create(cfg, data, "bars", recipe, new TrainingJob.Limits(6, null, null, null));
        full.train(null, () -> false);
        Path a = dir.resolve("a");
        full.exportModel(a);

        Path ck = dir.resolve("ck.safetensors");
        TrainingJob first = TrainingJob.create(cfg, data, "bars", recipe, new TrainingJob.Limits(3, null, null, ck));
        first.train(null, () -> false);
        Path mid = dir.resolve("mid");
        first.exportModel(mid);
        TrainingJob second = TrainingJob.resume(ck, data, "bars", new TrainingJob.Limits(6, null, null, ck));
        assertEquals(3, second.step());
        second.train(null, () -> false);
        Path b = dir.resolve("b");
        second.exportModel(b);

        byte[] wa = Files.readAllBytes(a.resolve(ModelFolder.UNET_WEIGHTS)), wb = Files.readAllBytes(b.resolve(ModelFolder.UNET_WEIGHTS));
        assertArrayEquals(wa, wb, "resumed UNet run gives the same weights file, byte for byte");
        assertFalse(java.util.Arrays.equals(wa, Files.readAllBytes(mid.resolve(ModelFolder.UNET_WEIGHTS))),
                "the weights changed between step 3 and step 6 (the comparison is not vacuous)");
        assertInstanceOf(UNet2DModel.class, ModelFolder.load(b).model());
        JsonView ra = Json.read(a.resolve(TrainingJob.TRAINING_JSON)), rb = Json.read(b.resolve(TrainingJob.TRAINING_JSON));
        assertEquals(6, rb.requireLong("steps"));
        assertEquals(ra.requireString("weights_sha256"), rb.requireString("weights_sha256"));
        assertEquals("mse", rb.get("objective").requireString("loss"), "unconditional UNet without learned sigma");
    }
}
