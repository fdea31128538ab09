package io.diffquant.engine.quant.config;

import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.calib.ActivationCalibrator;
import io.diffquant.engine.quant.calib.CalibBatch;
import io.diffquant.engine.quant.calib.CalibrationSettings;
import io.diffquant.engine.quant.calib.WeightCalibrator;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.SpecPatch;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The config file: exact round trips, reproduction of the quantized model, errors with JSON paths, model identity. */
class QuantConfigTest {
    @TempDir Path tmp;

    static final IntFormat INT4 = IntFormat.asymmetric(4), INT8 = IntFormat.asymmetric(8);

    /** A calibrated config on dit-small with overrides, per-timestep inputs, method and calibration settings. */
    static QuantConfig calibratedConfig(DiT m) {
        PointSpec d = new PointSpec(TensorSpec.weight(INT4, Granularity.CHANNEL, RangeSpec.MINMAX),
                TensorSpec.input(INT8, Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC));
        List<LayerOverride> ov = List.of(
                LayerOverride.fullPrecision("t_embedder"),
                new LayerOverride("blocks.*.mlp.fc1", new SpecPatch(null, IntFormat.symmetric(4), Granularity.group(16), null, null), SpecPatch.KEEP),
                new LayerOverride("blocks.1.attn.proj", SpecPatch.KEEP, new SpecPatch(null, null, null, RangeSpec.EMA, CalibrationMode.PER_TIMESTEP)),
                new LayerOverride("blocks.0.attn.softmax", SpecPatch.KEEP, SpecPatch.OFF));
        QuantPlan plan = QuantPlan.resolve(m, d, ov);
        CalibratedParams w = WeightCalibrator.calibrate(m, plan);
        CalibratedParams a;
        try (ActivationCalibrator ac = new ActivationCalibrator(m, plan, w, 1 << 10, 0)) {
            Random r = new Random(1);
            for (int t : new int[] {999, 500, 1}) {
                ac.observe(new CalibBatch(t, QuantTestSupport.rand(r, 1, 2, 4, 8, 8), new int[] {1, 2}, new int[] {0, 1}));
            }
            a = ac.result();
        }
        return new QuantConfig(ModelIdentity.of(m, "dit-small"), MethodSettings.of("rtn", Map.of("w_bits", 4)),
                CalibrationSettings.defaults(), d, ov, w.merge(a), Map.of("tfmq", ConfigJson.object().put("note", "kept verbatim").put("x", 0.1)), null);
    }

    @Test void exportImportExportIsByteIdenticalAndReproducesOutputs() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = calibratedConfig(m);
        Path f1 = tmp.resolve("a.json"), f2 = tmp.resolve("b.json");
        QuantConfigCodec.write(c, f1);
        QuantConfig back = QuantConfigCodec.read(f1);
        QuantConfigCodec.write(back, f2);
        assertArrayEquals(Files.readAllBytes(f1), Files.readAllBytes(f2), "export -> import -> export must be byte-identical");
        assertEquals(c.params(), back.params(), "parameters read back exactly");
        assertEquals(c.overrides(), back.overrides());
        assertEquals(c.method(), back.method());
        assertEquals(c.calibration(), back.calibration());
        assertTrue(back.params().input("blocks.1.attn.proj").isPerTimestep());
        assertEquals(java.util.Set.of(1f, 500f, 999f), back.params().input("blocks.1.attn.proj").perTimestep().keySet());
        // the same quantized outputs
        Tensor x = QuantTestSupport.rand(new Random(2), 1, 1, 4, 8, 8);
        QuantizedModel q1 = QuantConfigs.attach(c, m, false);
        Tensor o1 = m.forward(x, new float[] {500}, new int[] {3});
        q1.detach();
        DiT fresh = QuantTestSupport.ditSmall();
        QuantizedModel q2 = QuantizedModel.apply(fresh, f1, false);
        Tensor o2 = fresh.forward(x, new float[] {500}, new int[] {3});
        q2.detach();
        for (int i = 0; i < o1.size(); i++) assertEquals(Float.floatToRawIntBits(o1.data()[i]), Float.floatToRawIntBits(o2.data()[i]), "element " + i);
        Files.writeString(tmp.resolve("view.json"), Files.readString(f1));
    }

    @Test void learnedCodesGoToAVerifiedSidecar() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = calibratedConfig(m);
        WeightParams wp = c.params().weight("blocks.0.mlp.fc2");
        byte[] codes = new byte[m.layers().get("blocks.0.mlp.fc2").param("weight").size()];
        for (int i = 0; i < codes.length; i++) codes[i] = (byte) ((i * 7) % 16);
        QuantConfig withCodes = c.withParams(c.params().withWeight("blocks.0.mlp.fc2", new WeightParams(wp.params(), codes)));
        Path f1 = tmp.resolve("c.json"), f2 = tmp.resolve("d.json");
        QuantConfigCodec.write(withCodes, f1);
        assertTrue(Files.isRegularFile(tmp.resolve("c.codes.safetensors")));
        QuantConfig back = QuantConfigCodec.read(f1);
        assertArrayEquals(codes, back.params().weight("blocks.0.mlp.fc2").codes());
        QuantConfigCodec.write(back, f2);
        assertEquals(Files.readString(f1).replace("c.codes", "X"), Files.readString(f2).replace("d.codes", "X"));
        // the fake-quantized weight is the codes' values
        QuantizedModel q = QuantConfigs.attach(back, m, false);
        Tensor wq = q.quantizedWeight("blocks.0.mlp.fc2");
        for (int i = 0; i < 50; i++) assertEquals(INT4.decode(codes[i], wp.params(), i / 256), wq.data()[i], 0f);
        q.detach();
        Files.write(tmp.resolve("c.codes.safetensors"), new byte[] {1, 2, 3}, java.nio.file.StandardOpenOption.APPEND);
        JsonException ex = assertThrows(JsonException.class, () -> QuantConfigCodec.read(f1));
        assertTrue(ex.getMessage().contains("$.codes_file.sha256"), ex.getMessage());
    }

    @Test void floatsSurviveTheTextRoundTripExactly() throws Exception {
        SplittableRandom r = new SplittableRandom(3);
        float[] f = new float[20000];
        for (int i = 0; i < f.length; i++) {
            float v;
            do { v = Float.intBitsToFloat(r.nextInt()); } while (!Float.isFinite(v));
            f[i] = Math.abs(v);
        }
        f[0] = Float.MIN_VALUE;
        f[1] = Float.MAX_VALUE;
        f[2] = 0f;
        f[3] = Math.nextUp(1f);
        var node = ConfigJson.object();
        node.set("a", ConfigJson.floats(f));
        String text = ConfigJson.write(node);
        float[] back = ConfigJson.asFloatArray(ConfigJson.parse(text, "t").get("a"));
        for (int i = 0; i < f.length; i++) assertEquals(Float.floatToRawIntBits(f[i]), Float.floatToRawIntBits(back[i]), "float " + f[i]);
        assertEquals(text, ConfigJson.write(ConfigJson.parse(text, "t").node()));
    }

    static String json(DiT m, String defaults, String overrides, String method) {
        ModelIdentity id = ModelIdentity.of(m, "dit-small");
        return "{\n \"schema\": \"diffquant-quant-config\", \"schema_version\": 1,\n \"model\": " + id.toJson() + ",\n"
                + (method == null ? "" : " \"method\": " + method + ",\n")
                + " \"defaults\": " + defaults + ",\n \"overrides\": " + overrides + "\n}";
    }

    static final String DEFAULTS = "{\"weight\": {\"format\": \"int4-asym\", \"granularity\": \"channel\"}, \"input\": {\"format\": \"int8\", \"granularity\": \"token\", \"mode\": \"dynamic\"}}";

    static JsonException fails(DiT m, String text) {
        return assertThrows(JsonException.class, () -> QuantConfigs.bind(QuantConfigCodec.parse(text, "config.json"), m, false));
    }

    @Test void errorsNameTheJsonPath() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        JsonException e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.*\"}, {\"pattern\": \"blocks.1.*\"}, {\"pattern\": \"x*\", \"weight\": {\"format\": \"int9\"}}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[2].weight.format: unknown format \"int9\""), e.getMessage());
        assertTrue(e.getMessage().contains("valid names: int<b>-asym"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.*\"}, {\"pattern\": \"decoder.*\", \"weight\": \"off\"}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[1]: pattern 'decoder.*' matches no quantizable layer"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"*.norm1\", \"weight\": \"off\"}]", null));
        assertTrue(e.getMessage().contains("$.overrides[0]") && e.getMessage().contains("without weights or inputs"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[]", "{\"preset\": \"rtn\", \"options\": {\"w_bits\": 4, \"wbits\": 4}}"));
        assertTrue(e.getMessage().startsWith("config.json: $.method.options.wbits: unknown option \"wbits\" for preset \"rtn\"; valid: w_bits"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[]", "{\"preset\": \"gptq\"}"));
        assertTrue(e.getMessage().startsWith("config.json: $.method.preset: unknown method preset \"gptq\""), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.*\", \"wieght\": \"off\"}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[0].wieght: unknown field"), e.getMessage());
        e = fails(m, json(m, "{\"weight\": {\"format\": \"int4\", \"granularity\": \"token\"}, \"input\": \"off\"}", "[]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.defaults.weight.granularity: "), e.getMessage());
        e = fails(m, json(m, DEFAULTS.replace("\"mode\": \"dynamic\"", "\"mode\": \"static\""), "[]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.defaults.input.mode: "), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.mlp.fc1\", \"weight\": {\"granularity\": \"group7x\"}}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[0].weight.granularity: unknown granularity 'group7x'"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.mlp.fc1\", \"weight\": {\"format\": \"mxfp4\"}}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[0].weight.granularity: ") && e.getMessage().contains("block32"), e.getMessage());
        e = fails(m, json(m, DEFAULTS, "[{\"pattern\": \"blocks.0.mlp.fc1\", \"input\": {\"range\": \"lp9x\"}}]", null));
        assertTrue(e.getMessage().startsWith("config.json: $.overrides[0].input.range: unknown range 'lp9x'"), e.getMessage());
        e = assertThrows(JsonException.class, () -> QuantConfigCodec.parse(json(m, DEFAULTS, "[]", null).replace("\"schema_version\": 1", "\"schema_version\": 7"), "config.json"));
        assertTrue(e.getMessage().startsWith("config.json: $.schema_version: unsupported schema version 7"), e.getMessage());
        // parameters for something that is not a quant point, and with the wrong group count
        String params = json(m, DEFAULTS, "[]", null).replaceFirst("\\}$", ", \"params\": {\"blocks.0.norm1\": {\"weight\": {\"scales\": [1.0]}}}}");
        e = fails(m, params);
        assertTrue(e.getMessage().startsWith("config.json: $.params['blocks.0.norm1']: 'blocks.0.norm1' is not a quant point"), e.getMessage());
        params = json(m, DEFAULTS, "[]", null).replaceFirst("\\}$", ", \"params\": {\"blocks.0.attn.qkv\": {\"weight\": {\"scales\": [1.0], \"zero_points\": [3]}}}}");
        e = fails(m, params);
        assertTrue(e.getMessage().startsWith("config.json: $.params['blocks.0.attn.qkv'].weight.scales: 1 parameter groups, but int4-asym/channel/minmax on [192, 64] has 192"), e.getMessage());
    }

    @Test void aConfigForAnotherModelIsRefusedUnlessForced() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        QuantConfig c = calibratedConfig(m);
        DiT other = QuantTestSupport.ditSmall();
        other.layers().get("blocks.0.mlp.fc2").param("weight").data()[0] += 1e-3f;
        JsonException e = assertThrows(JsonException.class, () -> QuantConfigs.bind(c.withSource("cfg.json"), other, false));
        assertTrue(e.getMessage().startsWith("cfg.json: $.model: refusing to apply this config: the config was calibrated on other weights (model 'dit-small')"), e.getMessage());
        assertTrue(e.getMessage().contains("--force"), e.getMessage());
        QuantizedModel q = QuantConfigs.attach(c, other, true);
        q.detach();
        DiT bigger = QuantTestSupport.randomDiT(new io.diffquant.engine.model.dit.DiTConfig(8, 2, 4, 32, 2, 4, 4.0, 0.1, 10, true), 1, 0.02);
        e = assertThrows(JsonException.class, () -> QuantConfigs.bind(c.withSource("cfg.json"), bigger, false));
        assertTrue(e.getMessage().contains("with a different structure"), e.getMessage());
        QuantTestSupport.TinyConcatModel tiny = new QuantTestSupport.TinyConcatModel(1);
        e = assertThrows(JsonException.class, () -> QuantConfigs.bind(c.withSource("cfg.json"), tiny, false));
        assertTrue(e.getMessage().contains("the config is for a DiT, the model is a Tiny"), e.getMessage());
    }

    @Test void overridePatternsMatchPrefixesAndLaterEntriesWin() throws Exception {
        DiT m = QuantTestSupport.ditSmall();
        PointSpec d = new PointSpec(TensorSpec.weight(INT4, Granularity.CHANNEL, RangeSpec.MINMAX), TensorSpec.OFF);
        QuantPlan p = QuantPlan.resolve(m, d, List.of(
                LayerOverride.fullPrecision("blocks.1"),
                new LayerOverride("blocks.1.mlp.fc?", new SpecPatch(null, INT8, null, null, null), SpecPatch.KEEP),
                new LayerOverride("blocks.*.mlp.fc2", new SpecPatch(null, null, Granularity.group(32), null, null), SpecPatch.KEEP)));
        assertEquals(TensorSpec.OFF, p.spec("blocks.1.attn.qkv").weight(), "prefix 'blocks.1' covers its layers");
        assertEquals(INT8, p.spec("blocks.1.mlp.fc1").weight().format(), "re-enabled from the defaults with the new format");
        assertEquals(Granularity.CHANNEL, p.spec("blocks.1.mlp.fc1").weight().granularity());
        assertEquals(Granularity.group(32), p.spec("blocks.1.mlp.fc2").weight().granularity(), "the later entry wins");
        assertEquals(INT8, p.spec("blocks.1.mlp.fc2").weight().format());
        assertEquals(INT4, p.spec("blocks.0.mlp.fc2").weight().format());
        // bits: INT4 per channel on [256, 64]: 4 + (32 + 4) / 64 bits
        assertEquals(4 + 36.0 / 64, p.weightBits("blocks.0.mlp.fc1"), 1e-12);
        assertEquals(32.0, p.weightBits("blocks.1.attn.qkv"), 0);
        assertTrue(p.modelSizeBytes() < p.fpSizeBytes());
    }

    @Test void perTimestepParamsKeepTheirValues() throws Exception {
        QuantParams a = INT8.paramsForRange(new float[] {-1}, new float[] {2}), b = INT8.paramsForRange(new float[] {-3}, new float[] {0.5f});
        InputParams ip = InputParams.perTimestep(Map.of(999f, ActivationParams.of(a), 0f, ActivationParams.of(b)));
        assertEquals(a, ip.at(999f).part(0));
        assertEquals(b, ip.at(-0f).part(0), "-0 and +0 are the same timestep");
        assertEquals(null, ip.at(998f));
    }
}
