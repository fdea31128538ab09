package io.diffquant.engine.model.vae;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.diffquant.engine.model.vae.VaeTesting.*;
import static org.junit.jupiter.api.Assertions.*;

/** AutoencoderKL config.json parsing (diffusers defaults, errors naming file and field) and strict weight loading. */
class AutoencoderKLConfigTest {
    @TempDir Path tmp;

    private AutoencoderKLConfig parse(String json) throws JsonException {
        return AutoencoderKLConfig.fromJson(Json.parse(json, "vae/config.json"));
    }

    private void assertConfigError(String json, String... fragments) {
        JsonException ex = assertThrows(JsonException.class, () -> parse(json), json);
        String m = ex.getMessage();
        assertTrue(m.contains("vae/config.json"), "names the file: " + m);
        for (String f : fragments) assertTrue(m.contains(f), "message mentions '" + f + "': " + m);
    }

    @Test
    void emptyConfigGivesDiffusersDefaults() throws JsonException {
        AutoencoderKLConfig c = parse("{}");
        assertEquals(AutoencoderKLConfig.defaults(List.of(64)), c);
        assertEquals(3, c.inChannels());
        assertEquals(4, c.latentChannels());
        assertEquals(1, c.layersPerBlock());
        assertEquals(32, c.normNumGroups());
        assertEquals(0.18215f, c.scalingFactor());
        assertNull(c.shiftFactor());
        assertEquals(0f, c.shift());
        assertEquals(1, c.downsampleFactor());
        assertTrue(c.useQuantConv() && c.usePostQuantConv() && c.midBlockAddAttention());
    }

    @Test
    void explicitFieldsAndUnknownFieldsAreHandled() throws JsonException {
        AutoencoderKLConfig c = parse("""
                {"_class_name": "AutoencoderKL", "_diffusers_version": "0.21.0", "block_out_channels": [32, 64],
                 "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                 "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "latent_channels": 16, "norm_num_groups": 16,
                 "scaling_factor": 1.5035, "shift_factor": 0.0609, "sample_size": [64, 64], "force_upcast": false,
                 "latents_mean": null, "use_quant_conv": false, "use_post_quant_conv": false, "act_fn": "swish",
                 "mid_block_add_attention": false, "something_new": {"x": 1}}""");
        assertEquals(List.of(32, 64), c.blockOutChannels());
        assertEquals(16, c.latentChannels());
        assertEquals(1.5035f, c.scalingFactor());
        assertEquals(0.0609f, c.shiftFactor());
        assertEquals(64, c.sampleSize());
        assertFalse(c.useQuantConv() || c.usePostQuantConv() || c.midBlockAddAttention());
        assertEquals(2, c.downsampleFactor());
        // toJson round trip
        assertEquals(c, AutoencoderKLConfig.fromJson(io.diffquant.engine.io.JsonView.of(c.toJson(), "round trip")));
    }

    @Test
    void badFieldsAreNamed() {
        assertConfigError("{\"_class_name\": \"UNet2DModel\"}", "_class_name", "AutoencoderKL");
        assertConfigError("{\"block_out_channels\": [64, 128], \"down_block_types\": [\"DownEncoderBlock2D\"]}",
                "down_block_types", "1 entries", "2");
        assertConfigError("{\"block_out_channels\": [64], \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
                "up_block_types");
        assertConfigError("{\"down_block_types\": [\"AttnDownEncoderBlock2D\"]}", "down_block_types", "AttnDownEncoderBlock2D");
        assertConfigError("{\"up_block_types\": [\"AttnUpDecoderBlock2D\"]}", "up_block_types", "AttnUpDecoderBlock2D");
        assertConfigError("{\"block_out_channels\": [48], \"norm_num_groups\": 32}", "block_out_channels", "norm_num_groups 32");
        assertConfigError("{\"block_out_channels\": []}", "block_out_channels", "empty");
        assertConfigError("{\"block_out_channels\": [64, \"x\"]}", "block_out_channels[1]");
        assertConfigError("{\"act_fn\": \"gelu\"}", "act_fn", "gelu");
        assertConfigError("{\"scaling_factor\": 0}", "scaling_factor", "positive");
        assertConfigError("{\"scaling_factor\": -0.18215}", "scaling_factor");
        assertConfigError("{\"latent_channels\": 0}", "latent_channels");
        assertConfigError("{\"layers_per_block\": 0}", "layers_per_block");
        assertConfigError("{\"in_channels\": 2.5}", "in_channels");
        assertConfigError("{\"sample_size\": [64, 32]}", "sample_size", "square");
        assertConfigError("{\"use_quant_conv\": \"yes\"}", "use_quant_conv");
        assertConfigError("[1, 2]", "JSON object");
    }

    @Test
    void programmaticConfigErrorsNameTheField() {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> new AutoencoderKLConfig(3, 3,
                List.of("DownEncoderBlock2D"), List.of("UpDecoderBlock2D"), List.of(30), 1, "silu", 4, 32, 32, 0.18215f, null,
                true, true, true));
        assertTrue(ex.getMessage().contains("block_out_channels") && ex.getMessage().contains("30"), ex.getMessage());
    }

    // ------------------------------------------------------------------ folders and weights

    @Test
    void missingFilesAreReported() throws IOException {
        NoSuchFileException e1 = assertThrows(NoSuchFileException.class, () -> AutoencoderKL.load(tmp));
        assertTrue(e1.getMessage().contains("config.json"), e1.getMessage());
        Files.copy(smallFolder().resolve("config.json"), tmp.resolve("config.json"));
        NoSuchFileException e2 = assertThrows(NoSuchFileException.class, () -> AutoencoderKL.load(tmp));
        assertTrue(e2.getMessage().contains(AutoencoderKL.WEIGHTS), e2.getMessage());
    }

    @Test
    void strictLoadingNamesTheTensorsAndLeavesTheModelUnchanged() throws IOException {
        AutoencoderKL ref = AutoencoderKL.load(smallFolder());
        Map<String, Tensor> good = ref.stateDict();
        AutoencoderKL vae = new AutoencoderKL(ref.config());
        Tensor before = vae.layers().get("decoder.conv_in").param("weight");

        Map<String, Tensor> missing = new LinkedHashMap<>(good);
        missing.remove("decoder.up_blocks.1.resnets.0.conv2.bias");
        assertLoadError(vae, missing, "missing 1 tensors", "decoder.up_blocks.1.resnets.0.conv2.bias");

        Map<String, Tensor> extra = new LinkedHashMap<>(good);
        extra.put("decoder.up_blocks.1.resnets.0.time_emb_proj.weight", Tensor.zeros(16, 64));
        assertLoadError(vae, extra, "unexpected 1 tensors", "time_emb_proj");

        Map<String, Tensor> shape = new LinkedHashMap<>(good);
        shape.put("encoder.conv_in.weight", Tensor.zeros(8, 3, 1, 1));
        assertLoadError(vae, shape, "encoder.conv_in.weight", "[8, 3, 1, 1]", "[8, 3, 3, 3]");

        Map<String, Tensor> nan = new LinkedHashMap<>(good);
        Tensor bad = good.get("quant_conv.bias").copy();
        bad.data()[3] = Float.NaN;
        nan.put("quant_conv.bias", bad);
        assertLoadError(vae, nan, "quant_conv.bias", "NaN");

        assertSame(before, vae.layers().get("decoder.conv_in").param("weight"), "failed loads changed nothing");
        vae.loadStateDict(good, "good");
        assertSame(good.get("decoder.conv_in.weight"), vae.layers().get("decoder.conv_in").param("weight"));
    }

    private static void assertLoadError(AutoencoderKL vae, Map<String, Tensor> sd, String... fragments) {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> vae.loadStateDict(sd, "weights.safetensors"));
        String m = ex.getMessage();
        assertTrue(m.contains("weights.safetensors"), m);
        for (String f : fragments) assertTrue(m.contains(f), "'" + f + "' in: " + m);
    }

    @Test
    void aWrongConfigForTheWeightsIsReportedWithTheFile() throws IOException {
        Files.copy(smallFolder().resolve(AutoencoderKL.WEIGHTS), tmp.resolve(AutoencoderKL.WEIGHTS));
        Files.writeString(tmp.resolve("config.json"), """
                {"_class_name": "AutoencoderKL", "block_out_channels": [8, 16],
                 "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                 "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 4}""");
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> AutoencoderKL.load(tmp));
        assertTrue(ex.getMessage().contains(AutoencoderKL.WEIGHTS) && ex.getMessage().contains("unexpected"), ex.getMessage());
    }

    @Test
    void saveWritesALoadableDiffusersFolder() throws IOException {
        AutoencoderKL ref = AutoencoderKL.load(smallFolder());
        Path out = tmp.resolve("copy");
        ref.save(out, Map.of("note", "test"));
        AutoencoderKL back = AutoencoderKL.load(out);
        assertEquals(ref.config(), back.config());
        for (var e : ref.stateDict().entrySet())
            assertArrayEquals(e.getValue().data(), back.stateDict().get(e.getKey()).data(), e.getKey());
        try (var files = Files.list(out)) {
            assertEquals(List.of("config.json", AutoencoderKL.WEIGHTS), files.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no temporary files left");
        }
    }

    @Test
    void badInputsAreRejected() throws IOException {
        AutoencoderKL vae = AutoencoderKL.load(smallFolder());
        assertInputError(() -> vae.decode(Tensor.zeros(1, 3, 4, 4)), "3 channels", "latent_channels is 4");
        assertInputError(() -> vae.decode(Tensor.zeros(4, 4, 4)), "[N, C, h, w]");
        assertInputError(() -> vae.decode(Tensor.zeros(0, 4, 4, 4)), "non-empty");
        assertInputError(() -> vae.encodeMean(Tensor.zeros(1, 4, 32, 32)), "4 channels", "in_channels is 3");
        assertInputError(() -> vae.encodeMean(Tensor.zeros(1, 3, 30, 32)), "multiples of 4");
        assertInputError(() -> vae.encode(null), "null");
    }

    private static void assertInputError(org.junit.jupiter.api.function.Executable ex, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, ex);
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
    }
}
