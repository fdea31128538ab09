package io.diffquant.engine.quant.recon;

import io.diffquant.engine.model.BlockObserver;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;
import io.diffquant.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The blocks of a denoiser as BRECQ (Li et al., "BRECQ: Pushing the Limit of Post-Training Quantization by Block
 * Reconstruction", ICLR 2021) and Q-Diffusion reconstruct them: a DiT's {@code blocks.N} (inputs: tokens [N, T, D] and
 * the conditioning c [N, D]) and a UNet's ResNet blocks (inputs: feature map, SiLU(temb)) and attention blocks (input:
 * feature map). Each block can be observed during a full forward pass and run alone. Models without a block structure
 * have no blocks (their layers are reconstructed one by one).
 */
public interface BlockModel {
    /** Block names (the {@code block} tag of their layers), in execution order. */
    List<String> blocks();

    /** A full forward pass with an observer of every block. */
    void forward(Tensor x, float[] t, int[] y, BlockObserver observer);

    /** Runs one block alone on the inputs the observer saw for it. */
    Tensor runBlock(String block, Tensor[] inputs, ForwardContext ctx);

    /** The block structure of a model (DiT, UNet2DModel), or one without blocks. */
    static BlockModel of(DiffusionModel model) {
        if (model instanceof DiT d) return new DiTBlocks(d);
        if (model instanceof UNet2DModel u) return new UNetBlocks(u);
        return new None(model);
    }

    /** DiT: embed, conditioning, blocks.0 .. blocks.(depth-1), head, as DiT.forward. */
    record DiTBlocks(DiT dit) implements BlockModel {
        @Override public List<String> blocks() {
            List<String> b = new ArrayList<>();
            for (int i = 0; i < dit.depth(); i++) b.add("blocks." + i);
            return b;
        }

        @Override public void forward(Tensor x, float[] t, int[] y, BlockObserver observer) {
            ForwardContext ctx = dit.context(x, t, y);
            Tensor h = dit.embed(x, ctx);
            Tensor c = dit.conditioning(ctx);
            for (int i = 0; i < dit.depth(); i++) {
                String name = "blocks." + i;
                observer.input(name, new Tensor[] {h, c}, ctx);
                h = dit.block(i, h, c, ctx);
                observer.output(name, h, ctx);
            }
            dit.head(h, c, ctx);
        }

        @Override public Tensor runBlock(String block, Tensor[] inputs, ForwardContext ctx) {
            int i = index(block);
            if (inputs.length != 2) throw new IllegalArgumentException(block + ": a DiT block takes {x, c}, got " + inputs.length + " inputs");
            return dit.block(i, inputs[0], inputs[1], ctx);
        }

        private int index(String block) {
            if (block.startsWith("blocks.")) {
                try {
                    int i = Integer.parseInt(block.substring(7));
                    if (i >= 0 && i < dit.depth()) return i;
                } catch (NumberFormatException ignored) {
                    // falls through to the error
                }
            }
            throw new IllegalArgumentException("DiT has no block '" + block + "'; blocks are blocks.0 .. blocks." + (dit.depth() - 1));
        }
    }

    /** UNet2DModel: its ResNet and attention blocks. */
    record UNetBlocks(UNet2DModel unet) implements BlockModel {
        @Override public List<String> blocks() { return unet.blockNames(); }
        @Override public void forward(Tensor x, float[] t, int[] y, BlockObserver observer) { unet.forward(x, t, y, observer); }
        @Override public Tensor runBlock(String block, Tensor[] inputs, ForwardContext ctx) { return unet.runBlock(block, inputs, ctx); }
    }

    /** A model without a known block structure. */
    record None(DiffusionModel model) implements BlockModel {
        @Override public List<String> blocks() { return List.of(); }
        @Override public void forward(Tensor x, float[] t, int[] y, BlockObserver observer) { model.forward(x, t, y); }
        @Override public Tensor runBlock(String block, Tensor[] inputs, ForwardContext ctx) {
            throw new IllegalArgumentException(model.architecture() + " has no runnable blocks");
        }
    }
}
