package io.diffquant.engine.model.vae;

import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.unet.AttentionBlock;
import io.diffquant.engine.tensor.Tensor;

/**
 * diffusers' UNetMidBlock2D (src/diffusers/models/unets/unet_2d_blocks.py) as autoencoders/vae.py builds it:
 * resnets.0, attentions.0 (optional: mid_block_add_attention), resnets.1, no time embedding, eps 1e-6,
 * attention_head_dim = channels. Registration order as diffusers: attentions before resnets.
 */
final class VaeMidBlock {
    final AttentionBlock attention;
    final VaeResnetBlock resnet0, resnet1;

    VaeMidBlock(LayerRegistry reg, String prefix, int channels, int groups, float eps, boolean addAttention) {
        attention = addAttention ? new AttentionBlock(reg, prefix + ".attentions.0", channels, channels, groups, eps, 1f) : null;
        resnet0 = new VaeResnetBlock(reg, prefix + ".resnets.0", channels, channels, groups, eps);
        resnet1 = new VaeResnetBlock(reg, prefix + ".resnets.1", channels, channels, groups, eps);
    }

    Tensor forward(Tensor h, ForwardContext ctx, boolean fast) {
        h = resnet0.forward(h, ctx, fast);
        if (attention != null) h = attention.forward(h, ctx, fast);
        return resnet1.forward(h, ctx, fast);
    }
}
