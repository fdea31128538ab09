package io.diffquant.engine.quant.spec;

import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.model.Linear;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A place of a denoiser where quantization applies (Q-Diffusion's QuantModule / attention matmul quantizers): a
 * Linear or Conv2d layer (weight and input) or an activation probe (input only: attention q, k, v and the
 * post-softmax probabilities). The input of a layer tagged {@code concat-split=<c>} (the first ResNet conv and the
 * shortcut conv after a UNet skip concatenation) is quantized in two channel parts [0, c) and [c, C) with separate
 * parameters, as Q-Diffusion's split quantization does.
 *
 * @param name         the layer's state_dict prefix
 * @param kind         LINEAR, CONV2D or ACTIVATION
 * @param weightShape  the weight's shape, or null for probes
 * @param inChannels   input features (Linear in, Conv2d in channels; 0 for probes, whose width is known at run time)
 * @param splitAt      channel count of the first concatenated part, or -1
 * @param temporal     member of the TFMQ Temporal Information Block (tag {@code temporal=true})
 * @param block        the block tag (e.g. {@code blocks.3}), or null
 */
public record QuantPoint(String name, LayerKind kind, int[] weightShape, int inChannels, int splitAt, boolean temporal, String block) {
    /** Tag on layers whose input is a skip concatenation. */
    public static final String TAG_CONCAT_SPLIT = "concat-split";
    public static final String TAG_TEMPORAL = "temporal";
    public static final String TAG_BLOCK = "block";

    public QuantPoint {
        weightShape = weightShape == null ? null : weightShape.clone();
    }

    @Override public int[] weightShape() { return weightShape == null ? null : weightShape.clone(); }

    public boolean hasWeight() { return weightShape != null; }

    /** Whether the input is NCHW (convolutions), so channel-wise quantization acts on dim 1. */
    public boolean channelsFirst() { return kind == LayerKind.CONV2D; }

    /** Number of input parts with their own activation parameters (2 for a split concatenation). */
    public int inputParts() { return splitAt >= 0 ? 2 : 1; }

    /** The quant points of a model, in its layer order. Probes named {@code *.concat} are not points (their consumers are). */
    public static List<QuantPoint> of(DiffusionModel model) {
        List<QuantPoint> out = new ArrayList<>();
        for (Layer l : model.layers().all()) {
            QuantPoint p = of(l);
            if (p != null) out.add(p);
        }
        return out;
    }

    /** The quant point of one layer, or null if nothing of it is quantizable (norms, embeddings, concat probes). */
    public static QuantPoint of(Layer l) {
        boolean temporal = "true".equals(l.tags().get(TAG_TEMPORAL));
        String block = l.tags().get(TAG_BLOCK);
        int split = -1;
        String s = l.tags().get(TAG_CONCAT_SPLIT);
        if (s != null) {
            try {
                split = Integer.parseInt(s.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("layer '" + l.name() + "': tag concat-split=" + s + " is not a channel count");
            }
        }
        return switch (l.kind()) {
            case LINEAR -> new QuantPoint(l.name(), LayerKind.LINEAR, l.param("weight").shape(), ((Linear) l).in(), split, temporal, block);
            case CONV2D -> {
                Conv2d c = (Conv2d) l;
                if (split >= c.in()) throw new IllegalArgumentException("layer '" + l.name() + "': concat-split=" + split
                        + " is not inside its " + c.in() + " input channels");
                yield new QuantPoint(l.name(), LayerKind.CONV2D, l.param("weight").shape(), c.in(), split, temporal, block);
            }
            case ACTIVATION -> l.name().endsWith(".concat") ? null : new QuantPoint(l.name(), LayerKind.ACTIVATION, null, 0, split, temporal, block);
            default -> null;
        };
    }

    @Override public boolean equals(Object o) {
        return o instanceof QuantPoint p && p.name.equals(name) && p.kind == kind && Arrays.equals(p.weightShape, weightShape)
                && p.inChannels == inChannels && p.splitAt == splitAt && p.temporal == temporal && java.util.Objects.equals(p.block, block);
    }

    @Override public int hashCode() { return name.hashCode(); }

    @Override public String toString() { return kind + " " + name + (weightShape == null ? "" : " " + Arrays.toString(weightShape)); }
}
