package io.diffquant.engine.io;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Small JSON front end over Jackson for config files (diffusers/DiT {@code config.json}, the product's own files):
 * strict reading (duplicate keys and trailing content are errors; NaN/Infinity accepted as Python's json writes them)
 * with errors that name the file and line/column, located views ({@link JsonView}) whose accessors name the JSON path,
 * and atomic pretty-printed writing.
 */
public final class Json {
    private Json() {}

    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    /** The shared, configured mapper (thread-safe). */
    public static ObjectMapper mapper() { return MAPPER; }

    public static ObjectNode object() { return MAPPER.createObjectNode(); }

    public static ArrayNode array() { return MAPPER.createArrayNode(); }

    /** Reads and parses {@code file}; the returned view's errors name the file. */
    public static JsonView read(Path file) throws JsonException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new JsonException(file.toString(), null, "no such file", e);
        } catch (IOException e) {
            throw new JsonException(file.toString(), null, "cannot read: " + e, e);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new JsonException(file.toString(), null, "not valid UTF-8 text", e);
        }
        if (text.startsWith("\uFEFF")) text = text.substring(1);
        return parse(text, file.toString());
    }

    /** Parses {@code text}; {@code source} names it in error messages. */
    public static JsonView parse(String text, String source) throws JsonException {
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            JsonLocation loc = e.getLocation();
            String where = loc == null ? "" : "line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ": ";
            throw new JsonException(source, null, where + e.getOriginalMessage(), e);
        }
        if (root == null || root.isMissingNode()) throw new JsonException(source, null, "empty document, expected JSON");
        return new JsonView(root, source, "$");
    }

    /** Pretty-printed JSON text (two-space indent, one array element per line), ending in a newline. */
    public static String toPrettyString(Object value) {
        DefaultIndenter indent = new DefaultIndenter("  ", "\n");
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter(Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER))   // "key": value, as Python's json writes
                .withArrayIndenter(indent).withObjectIndenter(indent);
        try {
            return MAPPER.writer(pp).writeValueAsString(value) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot serialise to JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** Writes {@code value} (a JsonNode, Map, List, record ...) pretty-printed to {@code file}, atomically. */
    public static void write(Path file, Object value) throws IOException {
        Object v = value instanceof JsonView jv ? jv.node() : value;
        AtomicFiles.writeString(file, toPrettyString(v));
    }
}
