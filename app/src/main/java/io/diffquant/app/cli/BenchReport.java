package io.diffquant.app.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.AtomicFiles;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The output of a benchmark command: Markdown tables printed as they are measured (pasteable into docs/backends.md),
 * kept for {@code --out FILE}, and the same numbers as JSON for {@code --json FILE}; both files written atomically.
 * GitHub-flavoured Markdown pipe tables (https://github.github.com/gfm/#tables-extension-).
 */
final class BenchReport {
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final PrintStream out;
    private final StringBuilder md = new StringBuilder();
    final ObjectNode json = JSON.createObjectNode();

    BenchReport(PrintStream out) { this.out = out; }

    /** A line of text (Markdown paragraph), printed and kept. */
    void line(String text) {
        out.println(text);
        md.append(text).append('\n');
    }

    /** A blank line (paragraph break). */
    void blank() { line(""); }

    /** A "### title" heading after a blank line. */
    void heading(String title) {
        blank();
        line("### " + title);
        blank();
    }

    /** A Markdown table, printed and kept, with the columns padded so that it also reads in a terminal. */
    void table(List<String> header, List<List<String>> rows) {
        int n = header.size();
        int[] w = new int[n];
        for (int c = 0; c < n; c++) w[c] = Math.max(3, header.get(c).length());
        for (List<String> r : rows) {
            if (r.size() != n) throw new IllegalArgumentException("table row of " + r.size() + " cells for " + n + " columns: " + r);
            for (int c = 0; c < n; c++) w[c] = Math.max(w[c], r.get(c).length());
        }
        line(row(header, w));
        List<String> sep = new ArrayList<>();
        for (int c = 0; c < n; c++) sep.add("-".repeat(w[c]));
        line(row(sep, w));
        for (List<String> r : rows) line(row(r, w));
    }

    private static String row(List<String> cells, int[] w) {
        StringBuilder b = new StringBuilder("|");
        for (int c = 0; c < cells.size(); c++) {
            String s = cells.get(c).replace("|", "\\|");
            b.append(' ').append(s).append(" ".repeat(Math.max(0, w[c] - cells.get(c).length()))).append(" |");
        }
        return b.toString();
    }

    /** The JSON array of this name under the root (made on first use). */
    ArrayNode array(String name) {
        return json.has(name) ? (ArrayNode) json.get(name) : json.putArray(name);
    }

    String markdown() { return md.toString(); }

    /** Writes the Markdown to {@code mdFile} and the JSON to {@code jsonFile} (each may be null), atomically. */
    void write(Path mdFile, Path jsonFile) throws IOException {
        if (mdFile != null) {
            mkdirs(mdFile);
            AtomicFiles.writeString(mdFile, md.toString());
        }
        if (jsonFile != null) {
            mkdirs(jsonFile);
            AtomicFiles.writeString(jsonFile, JSON.writeValueAsString(json) + "\n");
        }
    }

    private static void mkdirs(Path f) throws IOException {
        Path dir = f.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
    }

    static String f(String fmt, Object... args) { return String.format(Locale.ROOT, fmt, args); }

    /** "2.31x". */
    static String ratio(double r) { return Double.isFinite(r) ? f("%.2fx", r) : "-"; }

    /** PASS / FAIL with the measured value, for the bar column. */
    static String bar(boolean pass) { return pass ? "PASS" : "FAIL"; }
}
