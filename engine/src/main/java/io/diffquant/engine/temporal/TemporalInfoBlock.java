package io.diffquant.engine.temporal;

import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerKind;
import io.diffquant.engine.model.Linear;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.unet.UNet2DModel;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The Temporal Information Block of a denoiser (TFMQ-DM, Huang et al., CVPR 2024, and its TPAMI extension "Temporal
 * Feature Matters", arXiv 2407.19547; ALGORITHMS.md §6): the modules that turn the timestep t (and the label y) into
 * the temporal features e_i(t[, y]) the rest of the network consumes, found automatically for both architectures.
 * <ul>
 *   <li>DiT: {@code t_embedder.mlp.0}, {@code t_embedder.mlp.2}, {@code y_embedder.embedding_table} (class-conditional
 *       models), every {@code blocks.N.adaLN_modulation.1} and {@code final_layer.adaLN_modulation.1}. Features: the
 *       modulation vectors of every block (width 6·hidden: shift, scale, gate of attention and MLP) and of the final
 *       layer (width 2·hidden: shift, scale), named after the consuming block ({@code blocks.N}, {@code final_layer}).
 *       They depend on y when the model is class-conditional.</li>
 *   <li>UNet2DModel: {@code time_proj} (learned time tables only), {@code time_embedding.linear_1/2}, the class
 *       embedding if any ({@code class_embedding} or {@code class_embedding.linear_1/2}) and every ResNet block's
 *       {@code time_emb_proj}. Features: the output of every time_emb_proj (width = the block's out channels, twice
 *       that with scale-shift), named after the ResNet block (e.g. {@code down_blocks.0.resnets.1}); they depend on y
 *       when the model has a class embedding.</li>
 * </ul>
 * The TIB members are the layers the model tags {@code temporal=true}; this class checks that the producing layers
 * are among them. Immutable; the API is stable (other packages build analyses on it).
 */
public final class TemporalInfoBlock {

    /**
     * One temporal feature e_i(t[, y]).
     * @param index      position in {@link #features()}
     * @param name       the consuming block ({@code blocks.3}, {@code final_layer}, {@code mid_block.resnets.0})
     * @param layer      the producing layer's state_dict prefix ({@code blocks.3.adaLN_modulation.1},
     *                   {@code mid_block.resnets.0.time_emb_proj})
     * @param width      elements of the feature vector
     * @param dependsOnY whether it varies with the label y (class-conditional models)
     * @param chunks     equal parts of the vector with different roles (DiT blocks 6: shift/scale/gate x 2; DiT final
     *                   layer 2; UNet 2 with scale-shift, else 1)
     */
    public record Feature(int index, String name, String layer, int width, boolean dependsOnY, int chunks) {
        /** Width of one chunk. */
        public int chunkWidth() { return width / chunks; }
    }

    private final String architecture;
    private final List<String> layers;
    private final List<Feature> features;
    private final int[] labels;
    private final Set<String> layerSet;

    private TemporalInfoBlock(String architecture, List<String> layers, List<Feature> features, int[] labels) {
        this.architecture = architecture;
        this.layers = Collections.unmodifiableList(new ArrayList<>(layers));
        this.features = Collections.unmodifiableList(new ArrayList<>(features));
        this.labels = labels;
        this.layerSet = new LinkedHashSet<>(layers);
    }

    /**
     * The TIB of a DiT or UNet2DModel.
     * @throws IllegalArgumentException for other architectures, a UNet with class_embed_type "identity" (its class
     *         vectors are an input, not a finite set) or a model whose temporal tags miss a producing layer
     */
    public static TemporalInfoBlock of(DiffusionModel model) {
        if (model == null) throw new IllegalArgumentException("temporal information block: model is null");
        List<String> tib = new ArrayList<>();
        for (Layer l : model.layers().all()) if ("true".equals(l.tags().get(DiT.TAG_TEMPORAL))) tib.add(l.name());
        List<Feature> feats = new ArrayList<>();
        int[] labels;
        if (model instanceof DiT d) {
            boolean cond = d.config().classConditional();
            int hidden = d.config().hiddenSize();
            for (int i = 0; i < d.depth(); i++)
                feats.add(new Feature(feats.size(), "blocks." + i, "blocks." + i + ".adaLN_modulation.1", 6 * hidden, cond, 6));
            feats.add(new Feature(feats.size(), "final_layer", "final_layer.adaLN_modulation.1", 2 * hidden, cond, 2));
            labels = cond ? range(d.config().embeddingRows()) : null;
        } else if (model instanceof UNet2DModel u) {
            String kind = u.config().classEmbeddingKind();
            if ("identity".equals(kind)) throw new IllegalArgumentException("temporal information block: this UNet2DModel has "
                    + "class_embed_type \"identity\" (class vectors are an input, so its time features do not come from a finite set)");
            boolean cond = u.classConditional();
            if (cond && u.numClasses() <= 0) throw new IllegalArgumentException("temporal information block: this UNet2DModel's "
                    + kind + " class embedding has no num_class_embeds, so its label set is unknown");
            boolean ss = u.config().scaleShift();
            for (Linear l : u.timeProjections()) {
                String name = l.name().substring(0, l.name().length() - ".time_emb_proj".length());
                feats.add(new Feature(feats.size(), name, l.name(), l.out(), cond, ss ? 2 : 1));
            }
            labels = cond ? range(u.numClasses()) : null;
        } else {
            throw new IllegalArgumentException("temporal information block: unsupported architecture " + model.architecture()
                    + " (DiT and UNet2DModel are supported)");
        }
        for (Feature f : feats) if (!tib.contains(f.layer())) throw new IllegalArgumentException("temporal information block: layer '"
                + f.layer() + "' produces a temporal feature but is not tagged temporal=true in this " + model.architecture());
        return new TemporalInfoBlock(model.architecture(), tib, feats, labels);
    }

    private static int[] range(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) a[i] = i;
        return a;
    }

    public String architecture() { return architecture; }

    /** Every TIB layer (embedders, MLPs, modulation / projection linears), in model order. */
    public List<String> layers() { return layers; }

    /** The TIB layers that are quant points with a weight (Linear layers; embedding tables are not quantized). */
    public List<String> linearLayers(DiffusionModel model) {
        List<String> out = new ArrayList<>();
        for (String n : layers) if (model.layers().get(n).kind() == LayerKind.LINEAR) out.add(n);
        return out;
    }

    /** Whether a layer belongs to the TIB. */
    public boolean contains(String layer) { return layerSet.contains(layer); }

    /** The temporal features, in execution order. */
    public List<Feature> features() { return features; }

    /** The feature of a name or producing layer; null when none. */
    public Feature feature(String nameOrLayer) {
        for (Feature f : features) if (f.name().equals(nameOrLayer) || f.layer().equals(nameOrLayer)) return f;
        return null;
    }

    /** The feature a layer produces, or null. */
    public Feature featureOfLayer(String layer) {
        for (Feature f : features) if (f.layer().equals(layer)) return f;
        return null;
    }

    /** Whether any feature depends on the label. */
    public boolean conditional() { return labels != null; }

    /**
     * Every label the features take (DiT: 0 .. num_classes, the last one being the null class of classifier-free
     * guidance when the model has one; UNet: 0 .. num_class_embeds-1), or null for unconditional models.
     */
    public int[] labels() { return labels == null ? null : labels.clone(); }

    /** Sum of the feature widths: floats per (t, y). */
    public int totalWidth() {
        int w = 0;
        for (Feature f : features) w += f.width();
        return w;
    }

    @Override public String toString() {
        return "TemporalInfoBlock[" + architecture + ", " + layers.size() + " layers, " + features.size() + " features"
                + (labels == null ? "" : ", " + labels.length + " labels") + "]";
    }
}
