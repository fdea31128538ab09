package io.diffquant.app.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ModelFolder;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.config.ModelIdentity;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static io.diffquant.app.cli.CliTest.GOLDEN;
import static io.diffquant.app.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** analyze on the golden dit-small (8x8x4, hidden 64, depth 2, 10 classes). */
class AnalyzeCommandTest {

    /** A round-to-nearest config of dit-small: weights per channel at {@code bits}, activations FP. */
    static Path rtnConfig(Path dir, int bits) throws Exception {
        DiffusionModel m = ModelFolder.load(GOLDEN.resolve("dit-small")).model();
        PointSpec defaults = new PointSpec(TensorSpec.weight(IntFormat.asymmetric(bits), Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
        CalibratedParams p = WeightCalibrator.calibrate(m, QuantPlan.resolve(m, defaults, List.of()));
        Path f = dir.resolve("rtn-w" + bits + ".json");
        QuantConfigCodec.write(new QuantConfig(ModelIdentity.of(m, "dit-small"), null, null, defaults, List.of(), p, null, null), f);
        return f;
    }

    @Test void writesJsonCsvAndPngForEveryAnalysis(@TempDir Path tmp) throws Exception {
        Path w3 = rtnConfig(tmp, 3), w8 = rtnConfig(tmp, 8);
        Path out = tmp.resolve("out");
        CliTest.Result r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "temporal-error,mismatch,trajectory",
                "--what", "layer-sensitivity,histogram", "-c", "w3=" + w3, "-c", w8.toString(), "--steps", "3", "--samples", "2", "--batch", "2",
                "--layers", "blocks.0.mlp.*", "--spec", "w:int4/channel,a:int8/tensor/minmax/per_timestep", "--bins", "16", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        for (String f : List.of("temporal-error.json", "temporal-error.csv", "temporal-error.png", "temporal-error-w3.png", "temporal-error-rtn-w8.png",
                "mismatch.json", "mismatch.csv", "mismatch-matrix.csv", "mismatch-w3.png", "trajectory.json", "trajectory.csv", "trajectory.png",
                "layer-sensitivity.json", "layer-sensitivity.csv", "layer-sensitivity-heatmap.csv", "layer-sensitivity.png",
                "layer-sensitivity-heatmap.png", "histogram.json", "histogram.csv", "histogram-grid.csv", "histogram-weight-blocks.0.mlp.fc1.png",
                "histogram-input-blocks.0.mlp.fc2.png", "histogram-input-blocks.0.mlp.fc2-per-timestep.png"))
            assertTrue(Files.isRegularFile(out.resolve(f)), f + " written; stdout:\n" + r.out());
        try (var s = Files.list(out)) {
            assertFalse(s.anyMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary files left");
        }

        JsonNode te = Json.read(out.resolve("temporal-error.json")).node();
        assertEquals("temporal-error", te.get("analysis").asText());
        assertEquals(3, te.get("timesteps").size());
        assertEquals(3, te.get("features").size(), "2 blocks + final layer");
        assertEquals("w3", te.get("configs").get(0).get("name").asText());
        assertEquals("rtn-w8", te.get("configs").get(1).get("name").asText());
        double e3 = te.get("configs").get(0).get("mean_relative_l2").asDouble(), e8 = te.get("configs").get(1).get("mean_relative_l2").asDouble();
        assertTrue(e3 > e8 && e8 > 0, e3 + " vs " + e8);
        List<String> csv = Files.readAllLines(out.resolve("temporal-error.csv"));
        assertEquals("config,feature,t,relative_l2,mse,cosine", csv.getFirst());
        assertEquals(1 + 2 * (3 + 1) * 3, csv.size(), "2 configs x (3 features + mean) x 3 timesteps");

        JsonNode ls = Json.read(out.resolve("layer-sensitivity.json")).node();
        assertEquals(2, ls.get("layers").size(), "fc1 and fc2 of block 0");
        assertTrue(ls.get("layers").get(0).get("spec").asText().contains("int4-asym/channel"), ls.toString());
        JsonNode hist = Json.read(out.resolve("histogram.json")).node().get("histograms");
        assertEquals(2 + 2 * (3 + 1), hist.size(), "2 weight histograms, 2 inputs x (3 timesteps + all)");
        assertEquals(16, hist.get(0).get("grid").size(), "int4 grid of the weight");
        assertEquals(256, hist.get(2).get("grid").size(), "int8 grid of the input");

        for (String png : List.of("temporal-error.png", "mismatch-w3.png", "trajectory.png", "layer-sensitivity-heatmap.png", "histogram-weight-blocks.0.mlp.fc1.png")) {
            BufferedImage img = ImageIO.read(out.resolve(png).toFile());
            assertNotNull(img, png);
            assertTrue(img.getWidth() >= 700 && img.getHeight() >= 400, png + " " + img.getWidth() + "x" + img.getHeight());
        }
        assertTrue(r.out().contains("files -> "), r.out());
    }

    @Test void perturbationWithoutFid(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("p");
        CliTest.Result r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "perturbation", "--no-fid",
                "--lambdas", "0,0.2", "--images", "2", "--steps", "3", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode j = Json.read(out.resolve("perturbation.json")).node();
        assertEquals(0.0, j.get("temporal").get("mse").get(0).asDouble(), 0.0, "λ = 0 reproduces the FP images");
        assertTrue(j.get("temporal").get("mse").get(1).asDouble() > 0);
        assertTrue(j.get("non_temporal").get("mse").get(1).asDouble() > 0);
        assertTrue(j.get("fp_fid").isNull(), "no FID without the classifier");
        assertTrue(Files.isRegularFile(out.resolve("perturbation-mse.png")));
        assertFalse(Files.exists(out.resolve("perturbation-fid.png")));
        // FID-FMNIST on an 8x8x4 model is refused with a hint
        r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "perturbation", "-o", out.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("FID-FMNIST") && r.err().contains("--no-fid"), r.err());
    }

    @Test void clearOneLineErrors(@TempDir Path tmp) throws Exception {
        CliTest.Result r = run("analyze", "-m", tmp.resolve("missing").toString(), "--what", "histogram", "-o", tmp.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("error: --model ") && r.err().contains("no such model folder"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());

        r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "temporal-eror", "-o", tmp.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().startsWith("error: --what 'temporal-eror': expected one of temporal-error, mismatch"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());

        r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "trajectory", "-o", tmp.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("give at least one --config"), r.err());

        r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "trajectory", "-c", "a=" + tmp.resolve("nope.json"),
                "-o", tmp.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--config a=") && r.err().contains("no such file"), r.err());

        r = run("analyze", "-m", GOLDEN.resolve("dit-small").toString(), "--what", "layer-sensitivity", "--spec", "w:int9", "-o", tmp.resolve("o").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--spec") && r.err().contains("int9"), r.err());
        assertFalse(Files.exists(tmp.resolve("o")), "nothing written on bad options");
    }
}
