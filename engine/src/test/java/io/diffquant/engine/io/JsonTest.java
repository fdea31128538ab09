package io.diffquant.engine.io;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Json/JsonView: typed access with path-naming errors, syntax errors with line/column, atomic pretty writing. */
class JsonTest {
    @TempDir Path dir;

    static final String UNET = """
            {
              "_class_name": "UNet2DModel",
              "sample_size": 16,
              "block_out_channels": [32, 64],
              "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
              "norm_eps": 1e-05,
              "mlp_ratio": 4.0,
              "flip_sin_to_cos": true,
              "class_embed_type": null,
              "odd key": {"x": [1, [2, 3]]}
            }
            """;

    @Test
    void typedAccessors() throws IOException {
        Path f = dir.resolve("config.json");
        Files.writeString(f, UNET);
        JsonView c = Json.read(f);
        assertEquals("UNet2DModel", c.requireString("_class_name"));
        assertEquals(16, c.requireInt("sample_size"));
        assertArrayEquals(new int[] {32, 64}, c.requireIntArray("block_out_channels"));
        assertEquals(List.of("DownBlock2D", "AttnDownBlock2D"), c.requireStringList("down_block_types"));
        assertEquals(1e-5, c.requireDouble("norm_eps"));
        assertEquals(4, c.requireInt("mlp_ratio"), "an integral float counts as an integer");
        assertEquals(4.0, c.requireDouble("mlp_ratio"));
        assertEquals(16.0, c.requireDouble("sample_size"), "an integer is a valid double");
        assertTrue(c.requireBoolean("flip_sin_to_cos"));
        assertNull(c.optString("class_embed_type", null), "JSON null reads as absent");
        assertEquals("none", c.optString("missing", "none"));
        assertEquals(8, c.optInt("norm_num_groups", 8));
        assertEquals(0.5, c.optDouble("missing", 0.5));
        assertFalse(c.optBoolean("missing", false));
        assertArrayEquals(new int[] {1}, c.optIntArray("missing", new int[] {1}));
        assertTrue(c.hasKey("class_embed_type"));
        assertFalse(c.has("class_embed_type"));
        assertTrue(c.opt("class_embed_type").isEmpty());
        assertEquals(Set.of("_class_name", "sample_size", "block_out_channels", "down_block_types", "norm_eps",
                "mlp_ratio", "flip_sin_to_cos", "class_embed_type", "odd key"), c.fieldNames());
        JsonView inner = c.get("odd key").get("x").at(1);
        assertEquals("$['odd key'].x[1]", inner.path());
        assertEquals(3, inner.at(1).asInt());
        assertEquals(2, inner.size());
        assertEquals(f.toString(), inner.source());
    }

    @Test
    void fieldErrorsNameFileAndJsonPath() throws IOException {
        Path f = dir.resolve("config.json");
        Files.writeString(f, """
                {"block_out_channels": [32, "64x"], "depth": 2.5, "heads": 70000000000, "name": 7, "flag": "yes",
                 "nested": {"list": [1, {"k": []}]}}
                """);
        JsonView c = Json.read(f);
        assertMessage(f + ": $.block_out_channels[1]: expected integer, got \"64x\"", () -> c.requireIntArray("block_out_channels"));
        assertMessage(f + ": $.depth: expected integer, got 2.5", () -> c.requireInt("depth"));
        assertMessage(f + ": $.heads: expected integer in int range, got 70000000000", () -> c.requireInt("heads"));
        assertEquals(70000000000L, c.requireLong("heads"));
        assertMessage(f + ": $.name: expected string, got 7", () -> c.requireString("name"));
        assertMessage(f + ": $.flag: expected boolean, got \"yes\"", () -> c.optBoolean("flag", false));
        assertMessage(f + ": $.hidden_size: missing required field", () -> c.requireInt("hidden_size"));
        assertMessage(f + ": $.nested.list[1].k: expected integer, got []", () -> c.get("nested").get("list").at(1).requireInt("k"));
        assertMessage(f + ": $.nested.list: index 5 out of range, the array has 2 elements", () -> c.get("nested").get("list").at(5));
        assertMessage(f + ": $.nested: expected array, got {\"list\":[1,{\"k\":[]}]}", () -> c.get("nested").size());
        assertMessage(f + ": $.depth: must be a positive integer", () -> { throw c.error("depth", "must be a positive integer"); });
        JsonException e = assertThrows(JsonException.class, () -> c.requireInt("flag"));
        assertEquals("$.flag", e.path());
        assertEquals(f.toString(), e.source());
    }

    @Test
    void syntaxErrorsNameLineAndColumn() throws IOException {
        Path f = dir.resolve("broken.json");
        Files.writeString(f, "{\n  \"a\": 1,\n  \"b\": [1, 2,]\n}\n");
        JsonException e = assertThrows(JsonException.class, () -> Json.read(f));
        assertTrue(e.getMessage().startsWith(f + ": line 3, column "), e.getMessage());
        assertNull(e.path());
        Files.writeString(f, "{\"a\": 1, \"a\": 2}");
        e = assertThrows(JsonException.class, () -> Json.read(f));
        assertTrue(e.getMessage().contains("line 1") && e.getMessage().contains("Duplicate field 'a'"), e.getMessage());
        Files.writeString(f, "{\"a\": 1} trailing");
        assertThrows(JsonException.class, () -> Json.read(f));
        Files.writeString(f, "   ");
        e = assertThrows(JsonException.class, () -> Json.read(f));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
        Files.write(f, new byte[] {'{', '"', (byte) 0xFF, '"', ':', '1', '}'});
        e = assertThrows(JsonException.class, () -> Json.read(f));
        assertTrue(e.getMessage().contains("UTF-8"), e.getMessage());
        Path none = dir.resolve("none.json");
        e = assertThrows(JsonException.class, () -> Json.read(none));
        assertEquals(none + ": no such file", e.getMessage());
    }

    @Test
    void pythonStyleNonFiniteNumbersAndBomAreAccepted() throws IOException {
        Path f = dir.resolve("py.json");
        Files.writeString(f, "\uFEFF{\"a\": NaN, \"b\": -Infinity}");
        JsonView v = Json.read(f);
        assertTrue(Double.isNaN(v.requireDouble("a")));
        assertEquals(Double.NEGATIVE_INFINITY, v.requireDouble("b"));
    }

    @Test
    void writesPrettyAtomicallyAndReadsBack() throws IOException {
        ObjectNode o = Json.object();
        o.put("hidden_size", 64).put("mlp_ratio", 4.0).put("name", "DiT");
        o.putArray("block_out_channels").add(32).add(64);
        o.putNull("class_embed_type");
        Path f = dir.resolve("out.json");
        Json.write(f, o);
        String text = Files.readString(f);
        assertEquals("""
                {
                  "hidden_size": 64,
                  "mlp_ratio": 4.0,
                  "name": "DiT",
                  "block_out_channels": [
                    32,
                    64
                  ],
                  "class_embed_type": null
                }
                """, text);
        JsonView back = Json.read(f);
        assertEquals(o, back.node());
        // maps and records serialise too, and replace the old file
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("steps", 10);
        Json.write(f, m);
        assertEquals(10, Json.read(f).requireInt("steps"));
        try (var s = Files.list(dir)) {
            assertEquals(1, s.count(), "no temporary file left");
        }
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable body) {
        JsonException e = assertThrows(JsonException.class, body);
        assertEquals(expected, e.getMessage());
    }
}
