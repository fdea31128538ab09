package io.diffquant.engine.model.unet;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** UNet2DConfig: diffusers field names, defaults, null semantics and error messages. */
class UNet2DConfigTest {
    static Path resource(String name) {
        try {
            return Path.of(UNet2DConfigTest.class.getResource("/unet/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final String BASE = """
            {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8,
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]""";

    private static UNet2DConfig parse(String extra) {
        return UNet2DConfig.fromJson(BASE + extra + "}", "cfg.json");
    }

    private static String error(String extra) {
        return assertThrows(IllegalArgumentException.class, () -> parse(extra)).getMessage();
    }

    @Test void readsTheDdpmCifar10Config() {
        UNet2DConfig c = UNet2DConfig.fromJson(resource("ddpm-cifar10-32-config.json"));
        assertEquals(32, c.sampleSize());
        assertEquals(List.of(128, 256, 256, 256), c.blockOutChannels());
        assertEquals(List.of("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"), c.downBlockTypes());
        assertEquals(List.of("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), c.upBlockTypes());
        assertEquals(2, c.layersPerBlock());
        assertEquals(0, c.downsamplePadding());
        assertFalse(c.flipSinToCos());
        assertEquals(1f, c.freqShift());
        assertEquals(1e-6f, c.normEps());
        assertNull(c.attentionHeadDim());
        assertEquals(256, c.headDim(256), "null attention_head_dim = one head over the block's channels");
        assertEquals(512, c.timeEmbedDim());
        assertEquals(128, c.timestepInputDim());
        assertEquals(32, c.midAttentionGroups());
        assertNull(c.classEmbeddingKind());
        assertTrue(c.hasMidBlock());
    }

    @Test void appliesDiffusersDefaults() {
        UNet2DConfig c = parse("");
        assertNull(c.sampleSize());
        assertEquals(3, c.inChannels());
        assertEquals(3, c.outChannels());
        assertEquals("positional", c.timeEmbeddingType());
        assertTrue(c.flipSinToCos());
        assertEquals(0f, c.freqShift());
        assertEquals(8, c.attentionHeadDim());
        assertEquals(1e-5f, c.normEps());
        assertEquals("default", c.resnetTimeScaleShift());
        assertEquals(1, c.downsamplePadding());
        assertEquals("conv", c.downsampleType());
        assertTrue(c.addAttention());
        assertEquals("UNetMidBlock2D", c.midBlockType());
        assertEquals(128, c.timeEmbedDim());
    }

    @Test void nullSemanticsOfClassEmbeddingAndMidAttentionGroups() {
        assertEquals("embedding", parse(", \"class_embed_type\": null, \"num_class_embeds\": 10").classEmbeddingKind());
        assertEquals("timestep", parse(", \"class_embed_type\": \"timestep\"").classEmbeddingKind());
        assertEquals("identity", parse(", \"class_embed_type\": \"identity\"").classEmbeddingKind());
        // scale_shift without attn_norm_num_groups: the mid-block attention has no group norm (diffusers)
        assertNull(parse(", \"resnet_time_scale_shift\": \"scale_shift\"").midAttentionGroups());
        assertEquals(4, parse(", \"resnet_time_scale_shift\": \"scale_shift\", \"attn_norm_num_groups\": 4").midAttentionGroups());
        assertEquals(64, parse(", \"time_embedding_dim\": 64").timeEmbedDim());
        assertEquals(64, parse(", \"time_embedding_type\": \"fourier\"").timestepInputDim());
        assertFalse(parse(", \"mid_block_type\": null").hasMidBlock());
    }

    @Test void ignoresUnknownFieldsAndStripsUNetResPrefix() {
        UNet2DConfig c = UNet2DConfig.fromJson("""
                {"_class_name": "UNet2DModel", "_diffusers_version": "0.30.0", "_name_or_path": "x", "some_future_field": [1, 2],
                 "block_out_channels": [32], "norm_num_groups": 8, "down_block_types": ["UNetResDownBlock2D"],
                 "up_block_types": ["UNetResUpBlock2D"], "sample_size": [16, 16]}""", "x.json");
        assertEquals(List.of("DownBlock2D"), c.downBlockTypes());
        assertEquals(List.of("UpBlock2D"), c.upBlockTypes());
        assertEquals(16, c.sampleSize());
    }

    @Test void toJsonRoundTrips() {
        UNet2DConfig a = UNet2DConfig.fromJson(resource("ddpm-cifar10-32-config.json"));
        assertEquals(a, UNet2DConfig.fromJson(a.toJson(), "round trip"));
        assertTrue(a.toJson().contains("\"_class_name\" : \"UNet2DModel\""), a.toJson());
        assertTrue(a.toJson().contains("\"attention_head_dim\" : null"));
        assertTrue(a.toJson().contains("\"freq_shift\" : 1"), "integral numbers stay integers");
        UNet2DConfig b = parse(", \"class_embed_type\": \"timestep\", \"num_class_embeds\": 3, \"mid_block_scale_factor\": 1.4142,"
                + " \"resnet_time_scale_shift\": \"scale_shift\", \"time_embedding_type\": \"fourier\", \"dropout\": 0.1");
        assertEquals(b, UNet2DConfig.fromJson(b.toJson(), "round trip"));
    }

    @Test void wrongTypesNameTheFileAndField() {
        String m = error(", \"layers_per_block\": \"two\"");
        assertTrue(m.startsWith("cfg.json: ") && m.contains("'layers_per_block'") && m.contains("integer"), m);
        m = error(", \"flip_sin_to_cos\": 1");
        assertTrue(m.contains("'flip_sin_to_cos'") && m.contains("true or false"), m);
        m = error(", \"norm_eps\": \"small\"");
        assertTrue(m.contains("'norm_eps'"), m);
        m = error(", \"in_channels\": 2.5");
        assertTrue(m.contains("'in_channels'"), m);
        m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(
                "{\"block_out_channels\": [32, \"x\"]}", "c.json")).getMessage();
        assertTrue(m.contains("'block_out_channels'") && m.contains("entry 1"), m);
    }

    @Test void unsupportedValuesListWhatIsSupported() {
        String m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(BASE.replace(
                "\"DownBlock2D\", \"AttnDownBlock2D\"", "\"DownBlock2D\", \"CrossAttnDownBlock2D\"") + "}", "cfg.json")).getMessage();
        assertTrue(m.contains("cfg.json") && m.contains("'down_block_types'") && m.contains("CrossAttnDownBlock2D")
                && m.contains("DownBlock2D, AttnDownBlock2D"), m);
        m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(BASE.replace(
                "\"AttnUpBlock2D\", \"UpBlock2D\"", "\"SkipUpBlock2D\", \"UpBlock2D\"") + "}", "cfg.json")).getMessage();
        assertTrue(m.contains("'up_block_types'") && m.contains("UpBlock2D, AttnUpBlock2D"), m);
        m = error(", \"act_fn\": \"gelu\"");
        assertTrue(m.contains("'act_fn'") && m.contains("silu"), m);
        m = error(", \"resnet_time_scale_shift\": \"spatial\"");
        assertTrue(m.contains("'resnet_time_scale_shift'") && m.contains("default, scale_shift"), m);
        m = error(", \"class_embed_type\": \"projection\"");
        assertTrue(m.contains("'class_embed_type'") && m.contains("timestep, identity"), m);
        m = error(", \"time_embedding_type\": \"rotary\"");
        assertTrue(m.contains("'time_embedding_type'"), m);
        m = error(", \"downsample_type\": \"fir\"");
        assertTrue(m.contains("'downsample_type'") && m.contains("conv, resnet"), m);
        m = error(", \"upsample_type\": \"transpose\"");
        assertTrue(m.contains("'upsample_type'"), m);
        m = error(", \"mid_block_type\": \"UNetMidBlock2DCrossAttn\"");
        assertTrue(m.contains("'mid_block_type'"), m);
        m = error(", \"time_embedding_type\": \"learned\"");
        assertTrue(m.contains("'num_train_timesteps'"), m);
    }

    @Test void inconsistentLayoutsAreRejected() {
        String m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(
                BASE.replace("[32, 64]", "[32, 64, 64]") + "}", "cfg.json")).getMessage();
        assertTrue(m.contains("'down_block_types'") && m.contains("block_out_channels has 3"), m);
        m = error(", \"norm_num_groups\": 6");
        assertTrue(m.contains("'block_out_channels'") && m.contains("norm_num_groups 6"), m);
        m = error(", \"attention_head_dim\": 128");
        assertTrue(m.contains("'attention_head_dim'") && m.contains("exceeds the 64 channels"), m);
        m = error(", \"sample_size\": 15");
        assertTrue(m.contains("'sample_size'"), m);
        m = error(", \"sample_size\": [16, 8]");
        assertTrue(m.contains("'sample_size'") && m.contains("square"), m);
        m = error(", \"layers_per_block\": 0");
        assertTrue(m.contains("'layers_per_block'"), m);
        m = error(", \"_class_name\": \"UNet2DConditionModel\"");
        assertTrue(m.contains("UNet2DConditionModel"), m);
    }

    @Test void fileErrorsNameTheFile(@TempDir Path dir) throws IOException {
        Path bad = dir.resolve("config.json");
        Files.writeString(bad, "{\"block_out_channels\": [32,");
        String m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(bad)).getMessage();
        assertTrue(m.startsWith(bad.toString()) && m.contains("not valid JSON"), m);
        Files.writeString(bad, "[1, 2]");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(bad)).getMessage().contains("JSON object"));
        Path missing = dir.resolve("nope.json");
        m = assertThrows(IllegalArgumentException.class, () -> UNet2DConfig.fromJson(missing)).getMessage();
        assertTrue(m.contains("nope.json") && m.contains("cannot read"), m);
    }
}
