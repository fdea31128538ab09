package io.diffquant.engine.model.dit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** DiTConfig: config.json reading/writing with the official argument names, validation messages, registry. */
class DiTConfigTest {
    @TempDir Path dir;

    static final String GOOD = """
            {"_class_name": "DiT", "input_size": 32, "patch_size": 2, "in_channels": 4, "hidden_size": 384,
             "depth": 12, "num_heads": 6, "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 1000,
             "learn_sigma": true, "_diffusers_version": "ignored"}""";

    private Path write(String json) throws IOException {
        Path f = dir.resolve("config.json");
        Files.writeString(f, json);
        return f;
    }

    /** The message of the error for GOOD with one field's value replaced (or removed with null). */
    private String errorWith(String field, String value) throws IOException {
        String json = GOOD.replaceFirst("\"" + field + "\": [^,}]+", value == null ? "\"removed\": 0" : "\"" + field + "\": " + value);
        assertNotEquals(GOOD, json, "test setup: field " + field);
        Path f = write(json);
        return assertThrows(IllegalArgumentException.class, () -> DiTConfig.fromJson(f)).getMessage();
    }

    @Test void readsTheOfficialNames() throws IOException {
        DiTConfig c = DiTConfig.fromJson(write(GOOD));
        assertEquals(new DiTConfig(32, 2, 4, 384, 12, 6, 4.0, 0.1, 1000, true), c);
        assertEquals(DiTConfig.named("DiT-S/2", 32, 1000, true), c);
        assertEquals(256, c.tokens());
        assertEquals(64, c.headDim());
        assertEquals(1536, c.mlpHidden());
        assertEquals(8, c.outChannels());
        assertEquals(1001, c.embeddingRows());
    }

    @Test void toJsonRoundTripsAndUsesTheOfficialNames() throws IOException {
        DiTConfig c = new DiTConfig(16, 4, 3, 96, 3, 4, 2.5, 0.0, 7, false);
        String json = c.toJson();
        for (String f : DiTConfig.FIELDS) assertTrue(json.contains("\"" + f + "\""), f);
        assertTrue(json.contains("\"_class_name\" : \"DiT\""), json);
        assertEquals(c, DiTConfig.fromJson(write(json)));
    }

    @Test void validationErrorsNameTheFileAndTheField() throws IOException {
        String m = errorWith("hidden_size", "100");
        assertTrue(m.endsWith("config.json: hidden_size 100 is not divisible by num_heads 6"), m);
        assertTrue(m.startsWith(dir.toString()), "names the file: " + m);
        assertTrue(errorWith("input_size", "33").contains("config.json: input_size 33 is not divisible by patch_size 2"));
        assertTrue(errorWith("depth", null).contains("config.json: depth is missing"));
        assertTrue(errorWith("patch_size", "\"2\"").contains("patch_size must be an integer, got \"2\""));
        assertTrue(errorWith("num_heads", "6.5").contains("num_heads must be an integer, got 6.5"));
        assertTrue(errorWith("depth", "0").contains("depth must be a positive integer, got 0"));
        assertTrue(errorWith("in_channels", "-4").contains("in_channels must be a positive integer, got -4"));
        assertTrue(errorWith("mlp_ratio", "0").contains("mlp_ratio 0.0 must be positive"));
        assertTrue(errorWith("mlp_ratio", "\"x\"").contains("mlp_ratio must be a number"));
        assertTrue(errorWith("class_dropout_prob", "1.0").contains("class_dropout_prob 1.0 must be in [0, 1)"));
        assertTrue(errorWith("num_classes", "-1").contains("num_classes -1 must be >= 0"));
        assertTrue(errorWith("learn_sigma", "1").contains("learn_sigma must be true or false"));
        assertTrue(errorWith("learn_sigma", null).contains("learn_sigma is missing"));
        assertTrue(errorWith("_class_name", "\"UNet2DModel\"").contains("_class_name is \"UNet2DModel\", expected \"DiT\""));
        assertTrue(errorWith("_class_name", null).contains("_class_name is missing"));
        // hidden 6 heads 3: divisible, but the 2-D sin-cos table needs a multiple of 4
        String m4 = errorWith("hidden_size", "6");
        assertTrue(m4.contains("hidden_size 6 is not divisible by 4"), m4);
        assertTrue(errorWith("input_size", "99999998").contains("too large"));
    }

    @Test void unreadableOrMalformedFiles() throws IOException {
        Path missing = dir.resolve("nope/config.json");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> DiTConfig.fromJson(missing));
        assertTrue(e.getMessage().contains(missing.toString()));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiTConfig.fromJson(write("{\"_class_name\": ")))
                .getMessage().contains("config.json: not valid JSON"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiTConfig.fromJson(write("[1, 2]")))
                .getMessage().contains("expected a JSON object"));
    }

    @Test void constructorValidatesToo() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new DiTConfig(32, 2, 4, 100, 2, 6, 4, 0.1, 10, true))
                .getMessage().contains("hidden_size 100 is not divisible by num_heads 6"));
    }

    @Test void registryHasTheOfficialSizes() {
        assertEquals(List.of("DiT-XL/2", "DiT-XL/4", "DiT-XL/8", "DiT-L/2", "DiT-L/4", "DiT-L/8",
                "DiT-B/2", "DiT-B/4", "DiT-B/8", "DiT-S/2", "DiT-S/4", "DiT-S/8"), DiTConfig.registryNames());
        int[][] expect = {{28, 1152, 16}, {24, 1024, 16}, {12, 768, 12}, {12, 384, 6}};
        String[] fam = {"XL", "L", "B", "S"};
        for (int f = 0; f < 4; f++) for (int p : new int[] {2, 4, 8}) {
            DiTConfig c = DiTConfig.named("DiT-" + fam[f] + "/" + p, 32, 1000, true);
            assertEquals(new DiTConfig(32, p, 4, expect[f][1], expect[f][0], expect[f][2], 4.0, 0.1, 1000, true), c);
        }
        assertEquals(64, DiTConfig.named("DiT-XL/2", 64, 10, false).inputSize());
        assertFalse(DiTConfig.named("DiT-B/4", 32, 10, false).learnSigma());
        String m = assertThrows(IllegalArgumentException.class, () -> DiTConfig.named("DiT-M/2", 32, 1000, true)).getMessage();
        assertTrue(m.contains("unknown DiT model 'DiT-M/2'") && m.contains("DiT-XL/2"), m);
        assertThrows(IllegalArgumentException.class, () -> DiTConfig.named("DiT-XL/3", 32, 1000, true));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DiTConfig.named("DiT-XL/4", 30, 1000, true))
                .getMessage().contains("input_size 30 is not divisible by patch_size 4"));
    }
}
