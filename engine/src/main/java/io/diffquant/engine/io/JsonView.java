package io.diffquant.engine.io;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A JSON value that knows where it came from (source file and JSON path), so that typed accessors fail with messages
 * like {@code config.json: $.block_out_channels[1]: expected integer, got "64x"}. Obtained from {@link Json#read}.
 * "Optional" accessors treat an absent field and a JSON {@code null} alike.
 */
public final class JsonView {
    private static final Pattern IDENT = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    private final JsonNode node;
    private final String source;
    private final String path;

    JsonView(JsonNode node, String source, String path) {
        this.node = node;
        this.source = source;
        this.path = path;
    }

    /** Wraps an existing node (e.g. built in code) with a source description for messages. */
    public static JsonView of(JsonNode node, String source) { return new JsonView(node, source, "$"); }

    public JsonNode node() { return node; }
    public String source() { return source; }
    /** This value's JSON path, {@code $} for the root. */
    public String path() { return path; }

    /** An exception about this value, for checks the accessors cannot express ("must be positive"). */
    public JsonException error(String message) { return new JsonException(source, path, message); }

    /** An exception about field {@code field} of this object. */
    public JsonException error(String field, String message) { return new JsonException(source, childPath(field), message); }

    // ------------------------------------------------------------ structure

    public boolean isObject() { return node.isObject(); }
    public boolean isArray() { return node.isArray(); }
    public boolean isNull() { return node.isNull(); }

    /** True if this object has {@code field} with a non-null value. */
    public boolean has(String field) { return node.isObject() && node.hasNonNull(field); }

    /** True if this object has {@code field} at all (possibly null). */
    public boolean hasKey(String field) { return node.isObject() && node.has(field); }

    /** Field names of this object, in document order. */
    public Set<String> fieldNames() throws JsonException {
        requireObject();
        Set<String> out = new LinkedHashSet<>();
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) out.add(it.next());
        return out;
    }

    /** The field's value (null included); missing field is an error. */
    public JsonView get(String field) throws JsonException {
        requireObject();
        JsonNode v = node.get(field);
        if (v == null) throw new JsonException(source, childPath(field), "missing required field");
        return new JsonView(v, source, childPath(field));
    }

    /** The field's value, or empty if it is absent or null. */
    public Optional<JsonView> opt(String field) throws JsonException {
        requireObject();
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) return Optional.empty();
        return Optional.of(new JsonView(v, source, childPath(field)));
    }

    /** Number of elements of this array. */
    public int size() throws JsonException {
        requireArray();
        return node.size();
    }

    /** Element {@code i} of this array. */
    public JsonView at(int i) throws JsonException {
        requireArray();
        if (i < 0 || i >= node.size()) {
            throw new JsonException(source, path, "index " + i + " out of range, the array has " + node.size() + " elements");
        }
        return new JsonView(node.get(i), source, path + "[" + i + "]");
    }

    /** The elements of this array. */
    public List<JsonView> elements() throws JsonException {
        requireArray();
        List<JsonView> out = new ArrayList<>(node.size());
        for (int i = 0; i < node.size(); i++) out.add(new JsonView(node.get(i), source, path + "[" + i + "]"));
        return out;
    }

    // ------------------------------------------------------------ this value, typed

    /** This value as an int: an integral number in int range (4.0 counts as 4). */
    public int asInt() throws JsonException {
        long v = asLongChecked("integer");
        if (v != (int) v) throw error("expected integer in int range, got " + describe(node));
        return (int) v;
    }

    public long asLong() throws JsonException { return asLongChecked("integer"); }

    /** This value as a double: any JSON number (NaN/Infinity accepted). */
    public double asDouble() throws JsonException {
        if (!node.isNumber()) throw error("expected number, got " + describe(node));
        return node.doubleValue();
    }

    public boolean asBoolean() throws JsonException {
        if (!node.isBoolean()) throw error("expected boolean, got " + describe(node));
        return node.booleanValue();
    }

    public String asString() throws JsonException {
        if (!node.isTextual()) throw error("expected string, got " + describe(node));
        return node.textValue();
    }

    public int[] asIntArray() throws JsonException {
        requireArray();
        int[] out = new int[node.size()];
        for (int i = 0; i < out.length; i++) out[i] = at(i).asInt();
        return out;
    }

    public long[] asLongArray() throws JsonException {
        requireArray();
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) out[i] = at(i).asLong();
        return out;
    }

    public double[] asDoubleArray() throws JsonException {
        requireArray();
        double[] out = new double[node.size()];
        for (int i = 0; i < out.length; i++) out[i] = at(i).asDouble();
        return out;
    }

    public List<String> asStringList() throws JsonException {
        requireArray();
        List<String> out = new ArrayList<>(node.size());
        for (int i = 0; i < node.size(); i++) out.add(at(i).asString());
        return List.copyOf(out);
    }

    // ------------------------------------------------------------ fields, typed

    public int requireInt(String field) throws JsonException { return get(field).asInt(); }
    public long requireLong(String field) throws JsonException { return get(field).asLong(); }
    public double requireDouble(String field) throws JsonException { return get(field).asDouble(); }
    public boolean requireBoolean(String field) throws JsonException { return get(field).asBoolean(); }
    public String requireString(String field) throws JsonException { return get(field).asString(); }
    public int[] requireIntArray(String field) throws JsonException { return get(field).asIntArray(); }
    public double[] requireDoubleArray(String field) throws JsonException { return get(field).asDoubleArray(); }
    public List<String> requireStringList(String field) throws JsonException { return get(field).asStringList(); }

    public int optInt(String field, int def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asInt();
    }

    public long optLong(String field, long def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asLong();
    }

    public double optDouble(String field, double def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asDouble();
    }

    public boolean optBoolean(String field, boolean def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asBoolean();
    }

    /** The string field, or {@code def} (may be null) if absent or null. */
    public String optString(String field, String def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asString();
    }

    public int[] optIntArray(String field, int[] def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asIntArray();
    }

    public List<String> optStringList(String field, List<String> def) throws JsonException {
        Optional<JsonView> v = opt(field);
        return v.isEmpty() ? def : v.get().asStringList();
    }

    @Override public String toString() { return source + ": " + path + " = " + describe(node); }

    // ------------------------------------------------------------ helpers

    private long asLongChecked(String what) throws JsonException {
        if (node.isIntegralNumber()) {
            if (!node.canConvertToLong()) throw error("expected " + what + ", got " + describe(node) + " (out of range)");
            return node.longValue();
        }
        if (node.isFloatingPointNumber()) {
            double d = node.doubleValue();
            if (d == Math.rint(d) && Math.abs(d) < 0x1p62) return (long) d;
        }
        throw error("expected " + what + ", got " + describe(node));
    }

    private void requireObject() throws JsonException {
        if (!node.isObject()) throw error("expected object, got " + describe(node));
    }

    private void requireArray() throws JsonException {
        if (!node.isArray()) throw error("expected array, got " + describe(node));
    }

    private String childPath(String field) {
        if (IDENT.matcher(field).matches()) return path + "." + field;
        return path + "['" + field.replace("\\", "\\\\").replace("'", "\\'") + "']";
    }

    static String describe(JsonNode v) {
        String s = v.toString();
        return s.length() > 80 ? s.substring(0, 77) + "..." : s;
    }
}
