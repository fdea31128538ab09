package io.diffquant.engine.quant.results;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The results table's Markdown section, its in-place replacement in a document, JSON and CSV. */
class ResultsTableTest {

    static ResultsTable table(String model, double fid) {
        ResultRow fp = new ResultRow(null, null, 10.5, 20, 90.0, Double.NaN, Double.NaN, Double.NaN, 32, 0, 12, null);
        ResultRow q = new ResultRow(new ResultConfig("rtn", 4, 8, "int"), null, fid, 30, 80.25, 25.125, 0.875, 0.01, 4.16, 3, 14,
                Map.of("temporal error", 0.0123));
        ResultRow bad = ResultRow.failed(new ResultConfig("q-dit", 4, 6, "fp"), "calibration failed, because \"x\"", 2);
        Map<String, String> info = new LinkedHashMap<>();
        info.put("images", "100 per row");
        return new ResultsTable(model, info, 2.1, List.of(fp, q, bad));
    }

    @Test void markdownRowsHaveTheHeadersColumnCount() {
        String md = table("dit-fmnist", 12.3456).toMarkdown();
        List<String> lines = md.lines().filter(l -> l.startsWith("|")).toList();
        assertEquals(5, lines.size(), md);
        long cols = lines.getFirst().chars().filter(c -> c == '|').count();
        for (String l : lines) assertEquals(cols, l.chars().filter(c -> c == '|').count(), "line: " + l);
        assertEquals(3 + 7 + 1, cols, "method, bits, format + FID, acc, PSNR, SSIM, temporal error, weight bits, calibration");
        assertTrue(lines.get(0).contains("FID-FMNIST (floor 2.10)") && lines.get(0).contains("temporal error"), lines.get(0));
        assertEquals("| `rtn` | W4A8 | INT | 12.35 | 80.3 | 25.13 | 0.8750 | 0.0123 | 4.16 | 3 s |", lines.get(3));
        assertTrue(lines.get(2).startsWith("| FP32 | – | – | 10.50 | 90.0 | – | – |"), lines.get(2));
        assertTrue(lines.get(4).startsWith("| `q-dit` | W4A6 | FP | failed |"), lines.get(4));
        assertTrue(md.contains("- q-dit W4A6 FP: calibration failed"), md);
        assertTrue(md.startsWith("<!-- results:begin dit-fmnist -->\n### dit-fmnist\n\n- images: 100 per row\n"), md);
        assertTrue(md.endsWith("<!-- results:end dit-fmnist -->\n"), md);
    }

    @Test void sectionsOfTwoModelsCoexistAndOnlyTheirOwnIsReplaced(@TempDir Path tmp) throws IOException {
        Path doc = tmp.resolve("docs").resolve("results.md");
        table("dit-fmnist", 12).writeSection(doc);
        String first = Files.readString(doc);
        assertTrue(first.startsWith(ResultsTable.DOC_HEADER), first);
        // hand-written text after the section and another model's section
        Files.writeString(doc, first + "\nNotes by hand.\n");
        table("unet-fmnist", 40).writeSection(doc);
        String both = Files.readString(doc);
        assertTrue(both.startsWith(first + "\nNotes by hand.\n\n<!-- results:begin unet-fmnist -->"), both);
        // rerun of the DiT: only its section changes
        table("dit-fmnist", 99).writeSection(doc);
        String again = Files.readString(doc);
        assertEquals(both.replace("| `rtn` | W4A8 | INT | 12.00 |", "| `rtn` | W4A8 | INT | 99.00 |"), again);
        assertEquals(1, again.split("results:begin dit-fmnist", -1).length - 1);
        assertTrue(again.contains("| `rtn` | W4A8 | INT | 40.00 |"), "the UNet section is kept");
        try (var s = Files.list(doc.getParent())) {
            assertEquals(List.of("results.md", "results.md.lock"), s.map(p -> p.getFileName().toString()).sorted().toList(), "no temp files left");
        }
    }

    @Test void damagedMarkersAreRefused(@TempDir Path tmp) throws IOException {
        Path doc = tmp.resolve("r.md");
        Files.writeString(doc, "# R\n<!-- results:begin dit-fmnist -->\nhalf a section\n");
        IOException e = assertThrows(IOException.class, () -> table("dit-fmnist", 1).writeSection(doc));
        assertTrue(e.getMessage().contains("r.md") && e.getMessage().contains("markers of model 'dit-fmnist' are damaged"), e.getMessage());
        assertEquals("# R\n<!-- results:begin dit-fmnist -->\nhalf a section\n", Files.readString(doc), "document untouched");
        assertThrows(IllegalArgumentException.class, () -> table("a -->", 1));
    }

    @Test void jsonAndCsvCarryEveryRow() {
        ResultsTable t = table("m", 12.5);
        String csv = t.toCsv();
        List<String> lines = csv.lines().toList();
        assertEquals("preset,w_bits,a_bits,format,fid_fmnist,fid_floor,sfid_fmnist,class_accuracy,psnr,ssim,mse,weight_bits,calibration_seconds,"
                + "sampling_seconds,temporal error,error", lines.get(0));
        assertEquals("fp32,,,,10.5,2.1,20.0,90.0,,,,32.0,0.0,12.0,,", lines.get(1));
        assertEquals("rtn,4,8,int,12.5,2.1,30.0,80.25,25.125,0.875,0.01,4.16,3.0,14.0,0.0123,", lines.get(2));
        assertTrue(lines.get(3).startsWith("q-dit,4,6,fp,,2.1,") && lines.get(3).endsWith(",\"calibration failed, because \"\"x\"\"\""), lines.get(3));
        String json = t.toJson();
        com.fasterxml.jackson.databind.JsonNode root;
        try { root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(json); }
        catch (java.io.IOException e) { throw new AssertionError("not JSON: " + json, e); }
        var rows = root.get("rows");
        assertEquals(3, rows.size(), json);
        assertEquals("fp32", rows.get(0).get("preset").asText(), json);
        assertTrue(rows.get(0).get("psnr").isNull(), json);
        assertEquals(0.0123, rows.get(1).get("temporal error").asDouble(), 0.0, json);
        assertEquals("calibration failed, because \"x\"", rows.get(2).get("error").asText(), json);
    }

    @Test void configGridAndBits() {
        List<ResultConfig> g = ResultConfig.grid(List.of("rtn", "fp4dit"), List.of("W8A8", "w4a6"), List.of("int", "FP"));
        assertEquals(8, g.size());
        assertEquals("rtn-w8a8-int", g.getFirst().id());
        assertEquals("fp4dit W4A6 FP", g.getLast().label());
        assertEquals(Map.of("w_bits", 4, "a_bits", 6, "w_format", "fp", "a_format", "fp", "recon_iters", "5"),
                g.getLast().options(Map.of("recon_iters", "5", "search", "true")), "only the options fp4dit declares");
        assertThrows(IllegalArgumentException.class, () -> ResultConfig.parseBits("W4"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ResultConfig("nope", 4, 8, "int"));
        assertTrue(e.getMessage().contains("unknown method preset"), e.getMessage());
    }
}
