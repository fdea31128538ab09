package io.diffquant.engine.temporal;

import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.quant.QuantTestSupport;
import io.diffquant.engine.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/** Small random models for the temporal tests. */
final class TemporalTestSupport {
    private TemporalTestSupport() {}

    /** DiT 8x8x3, hidden 32, depth 2, 4 heads, 5 classes + null. */
    static final DiTConfig DIT = new DiTConfig(8, 2, 3, 32, 2, 4, 4.0, 0.1, 5, true);
    /** Unconditional DiT, depth 3. */
    static final DiTConfig DIT_UNCOND = new DiTConfig(8, 4, 1, 16, 3, 2, 2.0, 0.0, 0, false);

    static final String UNET = """
            {"sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
             "norm_num_groups": 4, "attention_head_dim": 8, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
             "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]""";

    static DiT dit(DiTConfig cfg, long seed) { return QuantTestSupport.randomDiT(cfg, seed, 0.2); }

    static UNet2DModel unet(String extra, long seed) {
        UNet2DModel m = new UNet2DModel(UNet2DConfig.fromJson(UNET + extra + "}", "test"));
        Random r = new Random(seed);
        Map<String, Tensor> sd = new LinkedHashMap<>();
        for (var e : m.stateDict().entrySet()) {
            Tensor t = Tensor.zeros(e.getValue().shape());
            boolean normWeight = e.getKey().contains("norm") && e.getKey().endsWith(".weight");
            for (int i = 0; i < t.size(); i++) t.data()[i] = (float) ((normWeight ? 1 : 0) + 0.2 * r.nextGaussian());
            sd.put(e.getKey(), t);
        }
        m.loadWeights(sd, "random");
        return m;
    }

    static Tensor randn(long seed, int... shape) {
        return QuantTestSupport.rand(new Random(seed), 1.0, shape);
    }
}
