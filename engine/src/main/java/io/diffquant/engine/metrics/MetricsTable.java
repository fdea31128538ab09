package io.diffquant.engine.metrics;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;

/**
 * An immutable table of named metric values with units, optional ± (e.g. the IS split std) and an optional
 * "floor" (for FIDs: the distance between two independent real sets of the same size, below which differences are
 * noise), rendered as aligned text, JSON or CSV (ALGORITHMS.md §9); files are written atomically.
 *
 * @param title a heading, e.g. the model and quantization setting
 * @param info  ordered key/value provenance (model, format, seeds, sample count ...)
 * @param rows  the metrics, in display order
 */
public record MetricsTable(String title, Map<String, String> info, List<Row> rows) {
    public static final String FID_FMNIST = "FID-FMNIST";
    public static final String SFID_FMNIST = "sFID-FMNIST";
    public static final String IS_FMNIST = "IS-FMNIST";
    public static final String CLASS_ACCURACY = "class accuracy";
    public static final String MSE = "MSE";
    public static final String PSNR = "PSNR";
    public static final String SSIM = "SSIM";

    private static final String[] COLUMNS = {"metric", "value", "std", "unit", "floor"};
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /**
     * One metric.
     *
     * @param metric name, non-blank (e.g. {@link #FID_FMNIST})
     * @param value  the value (may be infinite, e.g. the PSNR of identical images)
     * @param unit   unit, "" when dimensionless (e.g. "dB" for PSNR, "%" for an accuracy in percent)
     * @param std    optional spread (± column)
     * @param floor  optional noise floor of the metric (FIDs)
     */
    public record Row(String metric, double value, String unit, OptionalDouble std, OptionalDouble floor) {
        public Row {
            if (metric == null || metric.isBlank()) throw new IllegalArgumentException("metrics table: blank metric name");
            unit = unit == null ? "" : unit;
            std = std == null ? OptionalDouble.empty() : std;
            floor = floor == null ? OptionalDouble.empty() : floor;
        }

        public static Row of(String metric, double value, String unit) {
            return new Row(metric, value, unit, OptionalDouble.empty(), OptionalDouble.empty());
        }

        public Row withStd(double s) { return new Row(metric, value, unit, OptionalDouble.of(s), floor); }

        public Row withFloor(double f) { return new Row(metric, value, unit, std, OptionalDouble.of(f)); }
    }

    public MetricsTable {
        title = title == null ? "" : title;
        info = Collections.unmodifiableMap(new LinkedHashMap<>(info == null ? Map.of() : info));
        rows = List.copyOf(rows == null ? List.of() : rows);
    }

    public static MetricsTable of(String title) { return new MetricsTable(title, Map.of(), List.of()); }

    /** This table with one more row. */
    public MetricsTable with(Row row) {
        List<Row> r = new ArrayList<>(rows);
        r.add(row);
        return new MetricsTable(title, info, r);
    }

    public MetricsTable with(String metric, double value, String unit) { return with(Row.of(metric, value, unit)); }

    /** A Fréchet distance with its floor. */
    public MetricsTable withFid(String metric, double value, double floor) {
        return with(Row.of(metric, value, "").withFloor(floor));
    }

    /** An Inception Score (mean ± std over splits). */
    public MetricsTable withInceptionScore(String metric, InceptionScore.Result is) {
        return with(Row.of(metric, is.mean(), "").withStd(is.std()));
    }

    /** This table with one more provenance entry (replacing an existing key). */
    public MetricsTable withInfo(String key, String value) {
        Map<String, String> m = new LinkedHashMap<>(info);
        m.put(key, value);
        return new MetricsTable(title, m, rows);
    }

    /** The first row named {@code metric}, if any. */
    public java.util.Optional<Row> row(String metric) {
        return rows.stream().filter(r -> r.metric().equals(metric)).findFirst();
    }

    // ------------------------------------------------------------------ text

    /** Aligned plain text: title, info lines, then the columns Metric, Value, ±, Unit, Floor (6 significant digits). */
    public String toText() {
        boolean anyStd = rows.stream().anyMatch(r -> r.std().isPresent());
        boolean anyFloor = rows.stream().anyMatch(r -> r.floor().isPresent());
        List<String[]> cells = new ArrayList<>();
        List<String> header = new ArrayList<>(List.of("Metric", "Value"));
        if (anyStd) header.add("±");
        header.add("Unit");
        if (anyFloor) header.add("Floor");
        cells.add(header.toArray(String[]::new));
        for (Row r : rows) {
            List<String> c = new ArrayList<>(List.of(r.metric(), formatShort(r.value())));
            if (anyStd) c.add(r.std().isPresent() ? formatShort(r.std().getAsDouble()) : "");
            c.add(r.unit());
            if (anyFloor) c.add(r.floor().isPresent() ? formatShort(r.floor().getAsDouble()) : "");
            cells.add(c.toArray(String[]::new));
        }
        int cols = header.size();
        int[] width = new int[cols];
        for (String[] c : cells) for (int j = 0; j < cols; j++) width[j] = Math.max(width[j], c[j].length());
        StringBuilder sb = new StringBuilder();
        if (!title.isEmpty()) sb.append(title).append('\n');
        for (Map.Entry<String, String> e : info.entrySet()) sb.append("  ").append(e.getKey()).append(": ").append(e.getValue()).append('\n');
        for (int i = 0; i < cells.size(); i++) {
            String[] c = cells.get(i);
            StringBuilder line = new StringBuilder();
            for (int j = 0; j < cols; j++) {
                if (j > 0) line.append("  ");
                boolean numeric = j > 0 && !header.get(j).equals("Unit");
                line.append(numeric ? padLeft(c[j], width[j]) : padRight(c[j], width[j]));
            }
            sb.append(line.toString().stripTrailing()).append('\n');
            if (i == 0) {
                int total = 0;
                for (int j = 0; j < cols; j++) total += width[j] + (j > 0 ? 2 : 0);
                sb.append("-".repeat(total)).append('\n');
            }
        }
        return sb.toString();
    }

    /** 6 significant digits, plain notation for 1e-4 <= |v| < 1e7, "inf"/"-inf"/"nan" for non-finite values. */
    public static String formatShort(double v) {
        if (Double.isNaN(v)) return "nan";
        if (Double.isInfinite(v)) return v > 0 ? "inf" : "-inf";
        if (v == 0) return "0";
        BigDecimal b = new BigDecimal(v).round(new MathContext(6)).stripTrailingZeros();
        double a = Math.abs(v);
        return a >= 1e-4 && a < 1e7 ? b.toPlainString() : b.toString();
    }

    private static String padLeft(String s, int w) { return " ".repeat(w - s.length()) + s; }

    private static String padRight(String s, int w) { return s + " ".repeat(w - s.length()); }

    // ------------------------------------------------------------------ JSON

    /**
     * {"title": ..., "info": {...}, "rows": [{"metric", "value", "std", "unit", "floor"}]}; absent std/floor are
     * null, non-finite numbers are the strings "Infinity", "-Infinity", "NaN" (JSON has no such numbers).
     */
    public String toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("title", title);
        ObjectNode inf = root.putObject("info");
        info.forEach(inf::put);
        ArrayNode arr = root.putArray("rows");
        for (Row r : rows) {
            ObjectNode o = arr.addObject();
            o.put("metric", r.metric());
            putNumber(o, "value", r.value());
            if (r.std().isPresent()) putNumber(o, "std", r.std().getAsDouble());
            else o.putNull("std");
            o.put("unit", r.unit());
            if (r.floor().isPresent()) putNumber(o, "floor", r.floor().getAsDouble());
            else o.putNull("floor");
        }
        try {
            return JSON.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("metrics table: cannot write JSON", e);
        }
    }

    private static void putNumber(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) o.put(key, v);
        else o.put(key, Double.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    }

    /** Parses what {@link #toJson()} writes. */
    public static MetricsTable fromJson(String json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("metrics table: invalid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException("metrics table: JSON must be an object");
        Map<String, String> inf = new LinkedHashMap<>();
        JsonNode infoNode = root.path("info");
        if (infoNode.isObject()) for (Iterator<Map.Entry<String, JsonNode>> it = infoNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            inf.put(e.getKey(), e.getValue().asText());
        }
        List<Row> rs = new ArrayList<>();
        JsonNode rowsNode = root.path("rows");
        if (!rowsNode.isArray()) throw new IllegalArgumentException("metrics table: JSON field 'rows' must be an array");
        int i = 0;
        for (JsonNode r : rowsNode) {
            String where = "metrics table: rows[" + i++ + "]";
            JsonNode m = r.get("metric");
            if (m == null || !m.isTextual()) throw new IllegalArgumentException(where + ": missing 'metric' name");
            Double v = number(r.get("value"), where + ".value");
            if (v == null) throw new IllegalArgumentException(where + ": missing 'value'");
            Double s = number(r.get("std"), where + ".std");
            Double f = number(r.get("floor"), where + ".floor");
            rs.add(new Row(m.asText(), v, r.path("unit").asText(""),
                    s == null ? OptionalDouble.empty() : OptionalDouble.of(s),
                    f == null ? OptionalDouble.empty() : OptionalDouble.of(f)));
        }
        return new MetricsTable(root.path("title").asText(""), inf, rs);
    }

    private static Double number(JsonNode n, String where) {
        if (n == null || n.isNull() || n.isMissingNode()) return null;
        if (n.isNumber()) return n.doubleValue();
        if (n.isTextual()) {
            String s = n.asText();
            switch (s) {
                case "Infinity", "inf": return Double.POSITIVE_INFINITY;
                case "-Infinity", "-inf": return Double.NEGATIVE_INFINITY;
                case "NaN", "nan": return Double.NaN;
                default: break;
            }
        }
        throw new IllegalArgumentException(where + ": expected a number, got " + n);
    }

    // ------------------------------------------------------------------ CSV

    /**
     * RFC 4180 CSV with the header {@code metric,value,std,unit,floor}; numbers at full precision (Java's
     * shortest round-trip form), non-finite ones as inf/-inf/nan, absent std/floor empty.
     */
    public String toCsv() {
        StringBuilder sb = new StringBuilder(String.join(",", COLUMNS)).append("\r\n");
        for (Row r : rows) {
            sb.append(csvField(r.metric())).append(',')
                    .append(csvNumber(r.value())).append(',')
                    .append(r.std().isPresent() ? csvNumber(r.std().getAsDouble()) : "").append(',')
                    .append(csvField(r.unit())).append(',')
                    .append(r.floor().isPresent() ? csvNumber(r.floor().getAsDouble()) : "")
                    .append("\r\n");
        }
        return sb.toString();
    }

    private static String csvNumber(double v) {
        if (Double.isNaN(v)) return "nan";
        if (Double.isInfinite(v)) return v > 0 ? "inf" : "-inf";
        return Double.toString(v);
    }

    private static String csvField(String s) {
        if (s.indexOf(',') < 0 && s.indexOf('"') < 0 && s.indexOf('\n') < 0 && s.indexOf('\r') < 0) return s;
        return '"' + s.replace("\"", "\"\"") + '"';
    }

    // ------------------------------------------------------------------ files

    public void writeJson(Path file) throws IOException { writeAtomically(file, toJson()); }

    public void writeCsv(Path file) throws IOException { writeAtomically(file, toCsv()); }

    public void writeText(Path file) throws IOException { writeAtomically(file, toText()); }

    /** Writes UTF-8 text to a temporary file in the target's folder, then renames it over the target. */
    public static void writeAtomically(Path file, String content) throws IOException {
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir != null) Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
        try {
            Files.writeString(tmp, content, StandardCharsets.UTF_8);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
