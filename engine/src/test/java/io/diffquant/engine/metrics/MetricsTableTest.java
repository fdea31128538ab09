package io.diffquant.engine.metrics;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** MetricsTable: exact text/CSV renderings, JSON structure and round trip, atomic files. */
class MetricsTableTest {
    private static MetricsTable sample() {
        return MetricsTable.of("DiT-S/2 FMNIST W4A8")
                .withInfo("samples", "1000")
                .withFid(MetricsTable.FID_FMNIST, 12.345678, 1.5)
                .withInceptionScore(MetricsTable.IS_FMNIST, new InceptionScore.Result(8.25, 0.125, new double[] {8.125, 8.375}))
                .with(MetricsTable.PSNR, Double.POSITIVE_INFINITY, "dB")
                .with(MetricsTable.MSE, 2.5e-5, "")
                .with("class accuracy, top-1", 97.5, "%");
    }

    @Test void alignedText() {
        String expected = String.join("\n",
                "DiT-S/2 FMNIST W4A8",
                "  samples: 1000",
                "Metric                    Value      ±  Unit  Floor",
                "---------------------------------------------------",
                "FID-FMNIST              12.3457                 1.5",
                "IS-FMNIST                  8.25  0.125",
                "PSNR                        inf         dB",
                "MSE                    0.000025",
                "class accuracy, top-1      97.5         %",
                "");
        assertEquals(expected, sample().toText());
        assertEquals("1.23457E-7", MetricsTable.formatShort(1.234567e-7));
        assertEquals("123457", MetricsTable.formatShort(123456.7));
        assertEquals("nan", MetricsTable.formatShort(Double.NaN));
    }

    @Test void csv() {
        String expected = "metric,value,std,unit,floor\r\n"
                + "FID-FMNIST,12.345678,,,1.5\r\n"
                + "IS-FMNIST,8.25,0.125,,\r\n"
                + "PSNR,inf,,dB,\r\n"
                + "MSE,2.5E-5,,,\r\n"
                + "\"class accuracy, top-1\",97.5,,%,\r\n";
        assertEquals(expected, sample().toCsv());
    }

    @Test void jsonStructureAndRoundTrip() throws Exception {
        MetricsTable t = sample();
        JsonNode root = new ObjectMapper().readTree(t.toJson());
        assertEquals("DiT-S/2 FMNIST W4A8", root.get("title").asText());
        assertEquals("1000", root.get("info").get("samples").asText());
        JsonNode fid = root.get("rows").get(0);
        assertEquals("FID-FMNIST", fid.get("metric").asText());
        assertTrue(fid.get("value").isNumber());
        assertEquals(12.345678, fid.get("value").asDouble(), 0);
        assertTrue(fid.get("std").isNull());
        assertEquals(1.5, fid.get("floor").asDouble(), 0);
        assertEquals("Infinity", root.get("rows").get(2).get("value").asText());
        MetricsTable back = MetricsTable.fromJson(t.toJson());
        assertEquals(t, back);
        assertEquals(8.25, back.row(MetricsTable.IS_FMNIST).orElseThrow().value(), 0);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MetricsTable.fromJson("{\"rows\": [{\"metric\": \"FID\", \"value\": \"abc\"}]}"));
        assertTrue(e.getMessage().contains("rows[0].value"), e.getMessage());
    }

    @Test void filesAreWrittenAtomically(@TempDir Path dir) throws Exception {
        MetricsTable t = sample();
        Path json = dir.resolve("out/metrics.json"), csv = dir.resolve("out/metrics.csv");
        Files.createDirectories(json.getParent());
        Files.writeString(json, "old content");
        t.writeJson(json);
        t.writeCsv(csv);
        assertEquals(t.toJson(), Files.readString(json));
        assertEquals(t.toCsv(), Files.readString(csv));
        try (Stream<Path> files = Files.list(json.getParent())) {
            List<String> names = files.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(List.of("metrics.csv", "metrics.json"), names, "no temporary files left behind");
        }
    }

    @Test void immutableValue() {
        MetricsTable a = MetricsTable.of("x");
        MetricsTable b = a.with("SSIM", 0.9, "");
        assertEquals(0, a.rows().size());
        assertEquals(1, b.rows().size());
        assertThrows(UnsupportedOperationException.class, () -> b.rows().add(MetricsTable.Row.of("y", 1, "")));
        assertThrows(IllegalArgumentException.class, () -> MetricsTable.Row.of(" ", 1, ""));
    }
}
