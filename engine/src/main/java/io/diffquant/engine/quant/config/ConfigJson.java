package io.diffquant.engine.quant.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;

import java.math.BigDecimal;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * JSON helpers of the quantization files: a reader that keeps decimal numbers exact (so every float32 written with
 * its shortest decimal, {@link Float#toString}, reads back to the same bits), strict field checks that name the JSON
 * path of unknown fields, and a deterministic pretty printer (two-space indent, arrays of numbers on one line) so that
 * writing the same value twice gives the same bytes.
 */
public final class ConfigJson {
    private ConfigJson() {}

    private static final ObjectMapper EXACT = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .nodeFactory(JsonNodeFactory.withExactBigDecimals(true))
            .build();

    public static ObjectNode object() { return EXACT.createObjectNode(); }
    public static ArrayNode array() { return EXACT.createArrayNode(); }

    /** Parses text with exact decimals; syntax errors name the source and line/column. */
    public static JsonView parse(String text, String source) throws JsonException {
        JsonNode root;
        try {
            root = EXACT.readTree(text);
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            String where = loc == null ? "" : "line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ": ";
            throw new JsonException(source, null, where + e.getOriginalMessage(), e);
        }
        if (root == null || root.isMissingNode()) throw new JsonException(source, null, "empty document, expected JSON");
        return JsonView.of(root, source);
    }

    /** Throws with the JSON path of the first field of {@code v} that is not in {@code allowed}. */
    public static void requireOnly(JsonView v, Set<String> allowed) throws JsonException {
        if (!v.isObject()) throw v.error("expected object, got " + v.node());
        for (String f : v.fieldNames()) {
            if (!allowed.contains(f)) throw v.error(f, "unknown field \"" + f + "\"; valid: " + String.join(", ", allowed));
        }
    }

    /** A JSON number as float32, exactly as written (the nearest float to the decimal). */
    public static float asFloat(JsonView v) throws JsonException {
        JsonNode n = v.node();
        if (!n.isNumber()) {
            if (n.isTextual() && ("NaN".equals(n.textValue()) || n.textValue().endsWith("Infinity")))
                return Float.parseFloat(n.textValue());
            throw v.error("expected number, got " + n);
        }
        if (n.isBigDecimal()) return n.decimalValue().floatValue();
        if (n.isIntegralNumber()) return new BigDecimal(n.bigIntegerValue()).floatValue();
        return (float) n.doubleValue();    // NaN / Infinity literals
    }

    public static float[] asFloatArray(JsonView v) throws JsonException {
        int n = v.size();
        float[] out = new float[n];
        for (int i = 0; i < n; i++) out[i] = asFloat(v.at(i));
        return out;
    }

    public static ArrayNode floats(float[] a) {
        ArrayNode arr = array();
        for (float f : a) arr.add(f);
        return arr;
    }

    public static ArrayNode ints(int[] a) {
        ArrayNode arr = array();
        for (int x : a) arr.add(x);
        return arr;
    }

    /** SHA-256 of a file's bytes, lowercase hex. */
    public static String sha256(java.nio.file.Path file) throws java.io.IOException {
        try (java.io.InputStream in = java.nio.file.Files.newInputStream(file)) {
            java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return java.util.HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Deterministic pretty text of a tree, ending in a newline. */
    public static String write(JsonNode node) {
        StringBuilder sb = new StringBuilder();
        write(node, sb, 0);
        return sb.append('\n').toString();
    }

    private static void write(JsonNode n, StringBuilder sb, int indent) {
        if (n.isObject()) {
            if (n.isEmpty()) { sb.append("{}"); return; }
            sb.append("{\n");
            Iterator<Map.Entry<String, JsonNode>> it = n.fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                pad(sb, indent + 1);
                sb.append(scalar(JsonNodeFactory.instance.textNode(e.getKey()))).append(": ");
                write(e.getValue(), sb, indent + 1);
                if (it.hasNext()) sb.append(',');
                sb.append('\n');
            }
            pad(sb, indent);
            sb.append('}');
        } else if (n.isArray()) {
            if (n.isEmpty()) { sb.append("[]"); return; }
            boolean flat = true;
            for (JsonNode c : n) if (c.isContainerNode()) { flat = false; break; }
            if (flat) {
                sb.append('[');
                for (int i = 0; i < n.size(); i++) {
                    if (i > 0) sb.append(", ");
                    sb.append(scalar(n.get(i)));
                }
                sb.append(']');
            } else {
                sb.append("[\n");
                for (int i = 0; i < n.size(); i++) {
                    pad(sb, indent + 1);
                    write(n.get(i), sb, indent + 1);
                    if (i < n.size() - 1) sb.append(',');
                    sb.append('\n');
                }
                pad(sb, indent);
                sb.append(']');
            }
        } else {
            sb.append(scalar(n));
        }
    }

    private static void pad(StringBuilder sb, int indent) { sb.append("  ".repeat(indent)); }

    private static String scalar(JsonNode n) {
        if (n.isFloat()) return Float.toString(n.floatValue());
        if (n.isDouble()) return Double.toString(n.doubleValue());
        if (n.isBigDecimal()) return Double.toString(n.doubleValue());   // as Double.toString wrote it
        try {
            return EXACT.writeValueAsString(n);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot write JSON value " + n, e);
        }
    }
}
