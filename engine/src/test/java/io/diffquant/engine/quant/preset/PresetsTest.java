package io.diffquant.engine.quant.preset;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.QuantPlan;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every preset gives the specs docs/methods.md documents, on dit-small and unet-small. */
class PresetsTest {
    static QuantPlan plan(DiffusionModel m, String preset, Map<String, ?> opts) {
        Preset p = Presets.byName(preset);
        Preset.Plan pp = p.plan(m, PresetOptions.resolve(p, opts));
        return QuantPlan.resolve(m, pp.defaults(), pp.overrides());
    }

    static TensorSpec w(QuantPlan p, String l) { return p.spec(l).weight(); }
    static TensorSpec in(QuantPlan p, String l) { return p.spec(l).input(); }

    @Test void rtn() throws Exception {
        for (DiffusionModel m : new DiffusionModel[] {QuantTestSupport.ditSmall(), QuantTestSupport.unetSmall()}) {
            QuantPlan p = plan(m, "rtn", Map.of("w_bits", 4, "a_bits", 8));
            for (QuantPoint q : p.points()) {
                PointSpec s = p.spec(q.name());
                if (q.hasWeight()) assertEquals(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX), s.weight(), q.name());
                assertEquals(TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.MINMAX, CalibrationMode.STATIC), s.input(), q.name());
            }
        }
        QuantPlan fp = plan(QuantTestSupport.ditSmall(), "rtn", Map.of("w_bits", 4, "a_bits", 6, "w_format", "fp", "a_format", "fp"));
        assertEquals(FpFormat.of(2, 1), w(fp, "blocks.0.attn.qkv").format());
        assertEquals(FpFormat.of(2, 3), in(fp, "blocks.0.attn.qkv").format());
        assertEquals(FpFormat.unsigned(3, 3), in(fp, "blocks.0.attn.softmax").format(), "unsigned FP after softmax");
        QuantPlan noAttn = plan(QuantTestSupport.unetSmall(), "rtn", Map.of("quantize_attention", false));
        assertFalse(in(noAttn, "mid_block.attentions.0.softmax").enabled());
        assertTrue(in(noAttn, "mid_block.attentions.0.to_q").enabled());
        assertEquals(IntFormat.asymmetric(8), w(noAttn, "conv_in").format(), "rtn defaults to W8A8");
    }

    @Test void qDiffusion() throws Exception {
        QuantPlan d = plan(QuantTestSupport.ditSmall(), "q-diffusion", Map.of());
        assertEquals(TensorSpec.weight(IntFormat.asymmetric(4), Granularity.CHANNEL, RangeSpec.MINMAX), w(d, "blocks.1.mlp.fc2"));
        assertEquals(TensorSpec.input(IntFormat.asymmetric(8), Granularity.TENSOR, RangeSpec.LP, CalibrationMode.STATIC), in(d, "blocks.1.mlp.fc2"));
        assertEquals("lp2.4x80s0.01", in(d, "blocks.1.attn.softmax").range().id());
        assertEquals(IntFormat.asymmetric(8), w(d, "x_embedder.proj").format(), "first layer at 8 bits");
        assertEquals(IntFormat.asymmetric(8), w(d, "final_layer.linear").format(), "last layer at 8 bits");
        assertEquals(IntFormat.asymmetric(4), w(d, "t_embedder.mlp.0").format());
        QuantPlan u = plan(QuantTestSupport.unetSmall(), "q-diffusion", Map.of("w_bits", 4, "a_bits", 6));
        assertEquals(IntFormat.asymmetric(8), w(u, "conv_in").format());
        assertEquals(IntFormat.asymmetric(8), w(u, "conv_out").format());
        assertEquals(IntFormat.asymmetric(6), in(u, "up_blocks.0.resnets.0.conv1").format());
        assertEquals(32, u.point("up_blocks.0.resnets.0.conv1").splitAt(), "concat split of the skip connection");
        assertEquals(2, u.point("up_blocks.1.resnets.0.conv_shortcut").inputParts());
        assertEquals("brecq", Presets.byName("q-diffusion").reconstruction(PresetOptions.resolve(Presets.byName("q-diffusion"), Map.of())).name());
        assertEquals(Reconstruction.NONE, Presets.byName("q-diffusion").reconstruction(PresetOptions.resolve(Presets.byName("q-diffusion"),
                Map.of("reconstruction", "none"))));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Presets.byName("q-diffusion")
                .reconstruction(PresetOptions.resolve(Presets.byName("q-diffusion"), Map.of("reconstruction", "gptq"))));
        assertTrue(e.getMessage().contains("unknown reconstruction \"gptq\"") && e.getMessage().contains("brecq, adaround"), e.getMessage());
    }

    @Test void qDiT() throws Exception {
        QuantPlan d = plan(QuantTestSupport.ditSmall(), "q-dit", Map.of("group_size", 32));
        Granularity g = Granularity.group(32);
        for (String l : new String[] {"blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.1.mlp.fc1", "blocks.1.mlp.fc2", "blocks.1.adaLN_modulation.1"}) {
            assertEquals(TensorSpec.weight(IntFormat.asymmetric(4), g, RangeSpec.MINMAX), w(d, l), l);
            assertEquals(TensorSpec.input(IntFormat.asymmetric(8), g, RangeSpec.MINMAX, CalibrationMode.DYNAMIC), in(d, l), l);
        }
        for (String l : new String[] {"x_embedder.proj", "t_embedder.mlp.0", "t_embedder.mlp.2", "final_layer.linear", "final_layer.adaLN_modulation.1"})
            assertEquals(PointSpec.FP, d.spec(l), l);
        assertFalse(in(d, "blocks.0.attn.q").enabled(), "attention matmul inputs off by default");
        QuantPlan a = plan(QuantTestSupport.ditSmall(), "q-dit", Map.of("quantize_attention", true));
        assertEquals(TensorSpec.input(IntFormat.asymmetric(8), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC), in(a, "blocks.0.attn.k"));
        QuantPlan u = plan(QuantTestSupport.unetSmall(), "q-dit", Map.of());
        assertEquals(PointSpec.FP, u.spec("conv_in"));
        assertEquals(PointSpec.FP, u.spec("time_embedding.linear_1"));
        assertEquals(PointSpec.FP, u.spec("conv_out"));
        assertEquals(Granularity.group(128), w(u, "mid_block.resnets.0.conv1").granularity());
        Preset q = Presets.byName("q-dit");
        GranularitySearchSpec s = q.search(QuantTestSupport.ditSmall(), PresetOptions.resolve(q, Map.of("search", true, "budget", 48.0)));
        assertEquals(10, s.genes().size(), "5 linear layers x 2 blocks");
        assertEquals(java.util.List.of(32, 64), java.util.Arrays.stream(s.genes().get(0).choices()).boxed().toList(), "divisors of 64 among 32..288");
        assertEquals(48.0, s.settings().budget());
        assertEquals(java.util.List.of(32, 64, 128, 192), java.util.Arrays.stream(QDiTPreset.choices(384)).boxed().toList());
        assertEquals(java.util.List.of(32, 288), java.util.Arrays.stream(QDiTPreset.choices(288)).boxed().toList());
        assertEquals(java.util.List.of(16), java.util.Arrays.stream(QDiTPreset.choices(16)).boxed().toList(), "no choice divides: the width itself");
    }

    @Test void fp4dit() throws Exception {
        QuantPlan d = plan(QuantTestSupport.ditSmall(), "fp4dit", Map.of());
        assertEquals(TensorSpec.weight(FpFormat.of(2, 1), Granularity.group(128), RangeSpec.MINMAX), w(d, "blocks.0.attn.qkv"));
        assertEquals(TensorSpec.weight(FpFormat.of(3, 0), Granularity.group(128), RangeSpec.MINMAX), w(d, "blocks.1.mlp.fc1"), "E3M0 before GELU");
        assertEquals(FpFormat.of(2, 1), w(d, "blocks.1.mlp.fc2").format());
        assertEquals(TensorSpec.input(FpFormat.of(4, 3), Granularity.TOKEN, RangeSpec.MINMAX, CalibrationMode.DYNAMIC), in(d, "blocks.1.mlp.fc2"));
        assertEquals(FpFormat.unsigned(5, 3), in(d, "blocks.0.attn.softmax").format());
        for (String l : new String[] {"t_embedder.mlp.0", "t_embedder.mlp.2", "final_layer.linear", "final_layer.adaLN_modulation.1"})
            assertEquals(PointSpec.FP, d.spec(l), l);
        assertEquals(FpFormat.of(2, 1), w(d, "x_embedder.proj").format(), "the patch embedding is quantized");
        assertEquals(FpFormat.of(2, 1), w(d, "blocks.0.adaLN_modulation.1").format());
        QuantPlan a6 = plan(QuantTestSupport.ditSmall(), "fp4dit", Map.of("a_bits", 6, "group_size", 0));
        assertEquals(FpFormat.of(2, 3), in(a6, "blocks.0.mlp.fc1").format());
        assertEquals(Granularity.CHANNEL, w(a6, "blocks.0.mlp.fc1").granularity());
        assertEquals(FpFormat.of(3, 2), in(plan(QuantTestSupport.ditSmall(), "fp4dit", Map.of("a_format", "fp6-e3m2")), "blocks.0.mlp.fc1").format());
        QuantPlan u = plan(QuantTestSupport.unetSmall(), "fp4dit", Map.of());
        for (String l : new String[] {"time_embedding.linear_1", "time_embedding.linear_2", "conv_out"}) assertEquals(PointSpec.FP, u.spec(l), l);
        assertEquals(FpFormat.of(2, 1), w(u, "up_blocks.0.resnets.0.conv1").format(), "UNet: no E3M0 layer");
        QuantPlan mx = plan(QuantTestSupport.ditSmall(), "fp4dit", Map.of("w_format", "mxfp4", "group_size", 32));
        assertEquals(BlockFormat.MXFP4, w(mx, "blocks.0.mlp.fc2").format());
        assertEquals(Granularity.block(32), w(mx, "blocks.0.mlp.fc2").granularity(), "block formats take their block granularity");
        QuantPlan nv = plan(QuantTestSupport.ditSmall(), "rtn", Map.of("a_format", "nvfp4"));
        assertEquals(TensorSpec.input(BlockFormat.NVFP4, Granularity.block(16), RangeSpec.MINMAX, CalibrationMode.DYNAMIC), in(nv, "blocks.0.mlp.fc1"),
                "block-format activations are quantized online");
    }

    @Test void unknownPresetsAndOptionsAreErrors() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Presets.byName("gptq")).getMessage().contains("valid: rtn, q-diffusion, q-dit, fp4dit"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PresetOptions.resolve(Presets.byName("rtn"), Map.of("bits", 4)));
        assertTrue(e.getMessage().contains("unknown option \"bits\""), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> PresetOptions.resolve(Presets.byName("rtn"), Map.of("w_bits", "four")));
        assertTrue(e.getMessage().contains("option 'w_bits'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> plan(QuantTestSupport.ditSmall(), "rtn", Map.of("w_format", "int9")));
        assertTrue(e.getMessage().contains("option 'w_format'"), e.getMessage());
    }
}
