package io.diffquant.engine.model.vae;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.diffquant.engine.model.vae.VaeTesting.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Full-size stabilityai/sd-vae-ft-ema: state_dict names, order and shapes against golden/keys/sd-vae-ft-ema.json
 * (written by tools/golden/make_golden_vae.py from its PyTorch re-implementation, itself checked there against a key
 * list derived by hand from the diffusers constructors), and the parameter count 83,653,863.
 */
class AutoencoderKLKeysTest {

    @Test
    void sdVaeFtEmaHasTheDiffusersStateDict() throws IOException {
        JsonView golden = Json.read(resource("keys/sd-vae-ft-ema.json"));
        AutoencoderKLConfig cfg = AutoencoderKLConfig.fromJson(golden.get("config"));
        assertEquals(AutoencoderKLConfig.stableDiffusion(), cfg, "the hub config parses to the built-in SD config");
        assertEquals(0.18215f, cfg.scalingFactor(), "no scaling_factor in the hub config: diffusers' default");
        AutoencoderKL vae = new AutoencoderKL(cfg);
        Map<String, Tensor> sd = vae.stateDict();

        JsonView keys = golden.get("keys");
        List<String> want = new ArrayList<>(keys.fieldNames());
        assertEquals(golden.requireInt("num_tensors"), want.size());
        assertEquals(248, want.size());
        assertEquals(want, new ArrayList<>(sd.keySet()), "names in AutoencoderKL.state_dict() order");
        for (String k : want)
            assertArrayEquals(keys.get(k).asIntArray(), sd.get(k).shape(), "shape of " + k);

        assertEquals(83_653_863L, golden.requireLong("num_parameters"));
        assertEquals(83_653_863L, vae.parameterCount());
        assertEquals(8, vae.downsampleFactor());
    }

    @Test
    void layerRegistryCoversEveryTensorAndTheAttentionProbes() {
        AutoencoderKL vae = new AutoencoderKL(AutoencoderKLConfig.stableDiffusion());
        long tensors = 0;
        for (Layer l : vae.layers().all()) {
            tensors += l.params().size();
            assertTrue(l.tags().containsKey("block"), "block tag on " + l.name());
        }
        assertEquals(248, tensors);
        assertEquals(8, vae.layers().ofKind(LayerKind.LINEAR).size(), "4 projections in each of the 2 mid-block attentions");
        for (String part : List.of("encoder", "decoder"))
            for (String probe : List.of("q", "k", "v", "softmax"))
                assertEquals(LayerKind.ACTIVATION, vae.layers().get(part + ".mid_block.attentions.0." + probe).kind());
        // the downsampler convs are stride 2 without padding (asymmetric F.pad first), the upsamplers stride 1 pad 1
        var down = (io.diffquant.engine.model.Conv2d) vae.layers().get("encoder.down_blocks.0.downsamplers.0.conv");
        assertEquals(2, down.stride());
        assertEquals(0, down.padding());
        var up = (io.diffquant.engine.model.Conv2d) vae.layers().get("decoder.up_blocks.0.upsamplers.0.conv");
        assertEquals(1, up.stride());
        assertEquals(1, up.padding());
        assertFalse(vae.layers().contains("encoder.down_blocks.3.downsamplers.0.conv"), "last level has no downsampler");
        assertFalse(vae.layers().contains("decoder.up_blocks.3.upsamplers.0.conv"), "last level has no upsampler");
        assertEquals(List.of("decoder.up_blocks.2.resnets.0.conv_shortcut", "decoder.up_blocks.3.resnets.0.conv_shortcut"),
                vae.layers().match("decoder.*conv_shortcut").stream().map(Layer::name).toList(), "512->256 and 256->128");
        assertArrayEquals(new int[] {512, 512}, vae.layers().get("decoder.mid_block.attentions.0.to_q").param("weight").shape(),
                "attention projections are Linear [C, C] (one head of dim 512)");
    }

    @Test
    void optionalConvsAndMidAttentionFollowTheConfig() {
        AutoencoderKLConfig base = AutoencoderKLConfig.defaults(List.of(32, 64));
        AutoencoderKLConfig bare = new AutoencoderKLConfig(3, 3, base.downBlockTypes(), base.upBlockTypes(), List.of(32, 64), 1,
                "silu", 4, 32, 32, 0.5f, null, false, false, false);
        Map<String, Tensor> full = new AutoencoderKL(base).stateDict(), noOpt = new AutoencoderKL(bare).stateDict();
        assertTrue(full.containsKey("quant_conv.weight") && full.containsKey("post_quant_conv.weight"));
        assertTrue(full.containsKey("decoder.mid_block.attentions.0.to_q.weight"));
        for (String k : noOpt.keySet()) assertTrue(full.containsKey(k), k);
        assertFalse(noOpt.containsKey("quant_conv.weight"));
        assertFalse(noOpt.containsKey("post_quant_conv.bias"));
        assertTrue(noOpt.keySet().stream().noneMatch(k -> k.contains(".attentions.")));
        assertEquals(full.size() - 4 - 2 * 10, noOpt.size(), "quant convs (4 tensors) and 2 x 10 attention tensors");
    }
}
