package io.diffquant.engine.quant.results;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.Json;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The results table of one model (issue 4's bar: FID-FMNIST, class accuracy and PSNR/SSIM vs FP for every preset at
 * W8A8, W4A8 and W4A6 in INT and FP) as a Markdown section of {@code docs/results.md}, JSON and CSV. The Markdown
 * section is delimited by HTML comments naming the model, so that each model's table is replaced on its own and the
 * other sections of the file stay as they are.
 *
 * @param model    the section key and heading (the model's name, e.g. dit-fmnist)
 * @param info     provenance lines (model, sampling, images, feature network, time ...), in order
 * @param fidFloor FID-FMNIST between two halves of the test set (the real-data floor)
 * @param rows     the FP row first, then the configurations in run order
 */
public record ResultsTable(String model, Map<String, String> info, double fidFloor, List<ResultRow> rows) {
    public ResultsTable {
        if (model == null || model.isBlank() || model.contains("-->") || model.contains("\n"))
            throw new IllegalArgumentException("results table: model name must be a non-empty single line without '-->', got '" + model + "'");
        info = new LinkedHashMap<>(info == null ? Map.of() : info);
        rows = List.copyOf(rows);
    }

    /** The extra metric names over all rows, in first-seen order. */
    public List<String> extraMetrics() {
        Set<String> s = new LinkedHashSet<>();
        for (ResultRow r : rows) s.addAll(r.extra().keySet());
        return new ArrayList<>(s);
    }

    static String beginMarker(String model) { return "<!-- results:begin " + model + " -->"; }
    static String endMarker(String model) { return "<!-- results:end " + model + " -->"; }

    private static String fmt(double v, int decimals) {
        return Double.isNaN(v) ? "–" : Double.isInfinite(v) ? (v > 0 ? "inf" : "-inf") : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    private static String sci(double v) {
        if (Double.isNaN(v)) return "–";
        if (v == 0) return "0";
        double a = Math.abs(v);
        return a >= 0.01 && a < 1000 ? String.format(Locale.ROOT, "%.4f", v) : String.format(Locale.ROOT, "%.3e", v);
    }

    private static String seconds(double s) {
        if (!(s > 0)) return "–";
        return s < 120 ? String.format(Locale.ROOT, "%.0f s", s) : String.format(Locale.ROOT, "%.1f min", s / 60);
    }

    /** The Markdown section, markers included, ending with a newline. */
    public String toMarkdown() {
        StringBuilder sb = new StringBuilder();
        sb.append(beginMarker(model)).append('\n');
        sb.append("### ").append(model).append("\n\n");
        for (Map.Entry<String, String> e : info.entrySet()) sb.append("- ").append(e.getKey()).append(": ").append(e.getValue()).append('\n');
        sb.append('\n');
        List<String> extras = extraMetrics();
        boolean acc = rows.stream().anyMatch(r -> !Double.isNaN(r.classAccuracy()));
        sb.append("| method | bits | format | FID-FMNIST (floor ").append(fmt(fidFloor, 2)).append(") |");
        if (acc) sb.append(" class acc. [%] |");
        sb.append(" PSNR vs FP [dB] | SSIM vs FP |");
        for (String x : extras) sb.append(' ').append(x).append(" |");
        sb.append(" weight bits | calibration |\n");
        int numeric = 5 + (acc ? 1 : 0) + extras.size();
        sb.append("|").append("---|".repeat(3)).append("---:|".repeat(numeric)).append('\n');
        List<ResultRow> failed = new ArrayList<>();
        for (ResultRow r : rows) {
            ResultConfig c = r.config();
            sb.append("| ").append(c == null ? "FP32" : "`" + c.preset() + "`").append(" | ").append(c == null ? "–" : c.bits())
                    .append(" | ").append(c == null ? "–" : c.format().toUpperCase(Locale.ROOT)).append(" |");
            if (!r.ok()) {
                failed.add(r);
                sb.append(" failed |");
                if (acc) sb.append(" |");
                sb.append(" | |");
                for (int i = 0; i < extras.size(); i++) sb.append(" |");
                sb.append(" | ").append(seconds(r.calibrationSeconds())).append(" |\n");
                continue;
            }
            sb.append(' ').append(fmt(r.fid(), 2)).append(" |");
            if (acc) sb.append(' ').append(fmt(r.classAccuracy(), 1)).append(" |");
            sb.append(' ').append(fmt(r.psnr(), 2)).append(" | ").append(fmt(r.ssim(), 4)).append(" |");
            for (String x : extras) sb.append(' ').append(sci(r.extra().getOrDefault(x, Double.NaN))).append(" |");
            sb.append(' ').append(fmt(r.weightBits(), 2)).append(" | ").append(seconds(r.calibrationSeconds())).append(" |\n");
        }
        if (!failed.isEmpty()) {
            sb.append("\nFailed:\n");
            for (ResultRow r : failed) sb.append("- ").append(r.label()).append(": ").append(r.error().replace('\n', ' ')).append('\n');
        }
        sb.append(endMarker(model)).append('\n');
        return sb.toString();
    }

    /** {"model", "info", "fid_floor", "rows": [...]}; NaN metrics are null. */
    public String toJson() {
        ObjectNode root = Json.object();
        root.put("model", model);
        ObjectNode inf = root.putObject("info");
        info.forEach(inf::put);
        num(root, "fid_floor", fidFloor);
        ArrayNode arr = root.putArray("rows");
        for (ResultRow r : rows) {
            ObjectNode o = arr.addObject();
            ResultConfig c = r.config();
            if (c == null) o.put("preset", "fp32");
            else {
                o.put("preset", c.preset());
                o.put("w_bits", c.wBits());
                o.put("a_bits", c.aBits());
                o.put("format", c.format());
            }
            if (r.error() != null) o.put("error", r.error());
            num(o, "fid_fmnist", r.fid());
            num(o, "sfid_fmnist", r.sfid());
            num(o, "class_accuracy", r.classAccuracy());
            num(o, "psnr", r.psnr());
            num(o, "ssim", r.ssim());
            num(o, "mse", r.mse());
            num(o, "weight_bits", r.weightBits());
            num(o, "calibration_seconds", r.calibrationSeconds());
            num(o, "sampling_seconds", r.samplingSeconds());
            for (Map.Entry<String, Double> e : r.extra().entrySet()) num(o, e.getKey(), e.getValue());
        }
        return Json.toPrettyString(root) + "\n";
    }

    private static void num(ObjectNode o, String k, double v) {
        if (Double.isFinite(v)) o.put(k, v);
        else o.putNull(k);
    }

    /** One line per row: preset,w_bits,a_bits,format,fid_fmnist,fid_floor,...,error (empty cells for NaN). */
    public String toCsv() {
        List<String> extras = extraMetrics();
        StringBuilder sb = new StringBuilder("preset,w_bits,a_bits,format,fid_fmnist,fid_floor,sfid_fmnist,class_accuracy,psnr,ssim,mse,weight_bits,"
                + "calibration_seconds,sampling_seconds");
        for (String x : extras) sb.append(',').append(csv(x));
        sb.append(",error\n");
        for (ResultRow r : rows) {
            ResultConfig c = r.config();
            sb.append(c == null ? "fp32,,,," : c.preset() + "," + c.wBits() + "," + c.aBits() + "," + c.format() + ",");
            for (double v : new double[] {r.fid(), fidFloor, r.sfid(), r.classAccuracy(), r.psnr(), r.ssim(), r.mse(), r.weightBits(),
                    r.calibrationSeconds(), r.samplingSeconds()}) sb.append(Double.isFinite(v) ? Double.toString(v) : "").append(',');
            for (String x : extras) {
                double v = r.extra().getOrDefault(x, Double.NaN);
                sb.append(Double.isFinite(v) ? Double.toString(v) : "").append(',');
            }
            sb.append(r.error() == null ? "" : csv(r.error())).append('\n');
        }
        return sb.toString();
    }

    private static String csv(String s) {
        return s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replace("\"", "\"\"") + "\"" : s;
    }

    public void writeJson(Path file) throws IOException { AtomicFiles.writeString(file, toJson()); }
    public void writeCsv(Path file) throws IOException { AtomicFiles.writeString(file, toCsv()); }

    /** The heading a new results document starts with. */
    public static final String DOC_HEADER = "# Results\n\nWritten by `diffquant results` (one section per model, replaced on every run); "
            + "see docs/methods.md for the presets.\n\n";

    /**
     * Writes this table's section into a Markdown document: replaces the text between this model's markers, or
     * appends the section when the document has none (creating the document with {@link #DOC_HEADER} if it does not
     * exist). Everything outside the section is kept byte for byte. The read-modify-write holds an exclusive lock on
     * {@code <doc>.lock} (two runs for two models may finish at the same time) and the file is replaced atomically.
     * @throws IOException when the document has a begin marker without its end marker (or the reverse, or twice)
     */
    public void writeSection(Path doc) throws IOException {
        Path abs = doc.toAbsolutePath();
        Files.createDirectories(abs.getParent());
        Path lock = abs.resolveSibling(abs.getFileName() + ".lock");
        try (FileChannel ch = FileChannel.open(lock, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock ignored = ch.lock()) {
            String old = Files.isRegularFile(abs) ? Files.readString(abs, StandardCharsets.UTF_8) : DOC_HEADER;
            AtomicFiles.writeString(abs, replaceSection(old, model, toMarkdown(), abs.toString()));
        }
    }

    /** The document with the model's section replaced or appended (see {@link #writeSection}). */
    static String replaceSection(String doc, String model, String section, String name) throws IOException {
        String b = beginMarker(model), e = endMarker(model);
        int i = doc.indexOf(b), j = doc.indexOf(e);
        if (i < 0 && j < 0) {
            String sep = doc.isEmpty() || doc.endsWith("\n\n") ? "" : doc.endsWith("\n") ? "\n" : "\n\n";
            return doc + sep + section;
        }
        if (i < 0 || j < 0 || j < i || doc.indexOf(b, i + 1) >= 0 || doc.indexOf(e, j + 1) >= 0) throw new IOException(name
                + ": the section markers of model '" + model + "' are damaged (expected one '" + b + "' followed by one '" + e
                + "'); fix or remove them by hand");
        int end = j + e.length();
        if (end < doc.length() && doc.charAt(end) == '\n') end++;
        return doc.substring(0, i) + section + doc.substring(end);
    }
}
