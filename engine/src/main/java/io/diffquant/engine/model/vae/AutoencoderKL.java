package io.diffquant.engine.model.vae;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.Conv2d;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.LayerRegistry;
import io.diffquant.engine.model.Norm;
import io.diffquant.engine.model.MappedWeights;
import io.diffquant.engine.model.MemoryBudget;
import io.diffquant.engine.model.StateDicts;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.VaeOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * diffusers' AutoencoderKL, the Stable Diffusion VAE (huggingface/diffusers src/diffusers/models/autoencoders/
 * autoencoder_kl.py and vae.py Encoder/Decoder, with DownEncoderBlock2D, UpDecoderBlock2D and UNetMidBlock2D of
 * unets/unet_2d_blocks.py). Every layer is registered under its exact state_dict prefix, in diffusers' module order
 * (encoder, decoder with up_blocks before mid_block, quant_conv, post_quant_conv), so {@link #stateDict()} lists the
 * names in the order {@code AutoencoderKL.state_dict()} does and a diffusers folder loads unchanged.
 *
 * <p><b>Latent convention.</b> "Latents" are diffusion-space latents, the tensors a latent diffusion model (SD UNet,
 * DiT) samples: {@code latents = scaling_factor * (z - shift_factor)} where z is the VAE's own latent (shift_factor
 * null = 0). {@link #decode}, {@link #encodeMean} and {@link #encodeSample} work on diffusion-space latents, as the
 * diffusers pipelines do around the VAE ({@code vae.decode(latents / scaling_factor)}, {@code
 * vae.encode(x).latent_dist.sample() * scaling_factor}); {@link #decodeRaw} and {@link #encode} work on z.
 * So {@code decode(encodeMean(x))} is a reconstruction of x. Images are [N, C, H, W] in [-1, 1].
 *
 * <p>Hooks see {@link ForwardContext#NONE} (the VAE has no timestep). Layer tag {@code block=<prefix>} names the
 * ResNet or attention block a layer belongs to (else its own prefix). Fast paths (fused GroupNorm+SiLU, one-pass
 * attention) are taken only where no hook observes the intermediate they skip; {@link #setFastPaths} turns them off.
 */
public final class AutoencoderKL {
    public static final String WEIGHTS = "diffusion_pytorch_model.safetensors";
    public static final String CONFIG = "config.json";
    /** resnet_eps / attention eps / conv_norm_out eps of vae.py's Encoder and Decoder. */
    static final float EPS = 1e-6f;

    private final AutoencoderKLConfig cfg;
    private final LayerRegistry layers = new LayerRegistry();
    private final Conv2d encConvIn, encConvOut, quantConv;
    private final List<DownLevel> encDown = new ArrayList<>();
    private final VaeMidBlock encMid;
    private final Norm encNormOut;
    private final Conv2d decConvIn, decConvOut, postQuantConv;
    private final List<UpLevel> decUp = new ArrayList<>();
    private final VaeMidBlock decMid;
    private final Norm decNormOut;
    private volatile boolean fastPaths = true;

    private record DownLevel(List<VaeResnetBlock> resnets, Conv2d downConv) {}

    private record UpLevel(List<VaeResnetBlock> resnets, Conv2d upConv) {}

    /** Builds the network for a config with zero weights (GroupNorm weights one); load weights with {@link #loadStateDict}. */
    public AutoencoderKL(AutoencoderKLConfig cfg) {
        this.cfg = cfg;
        List<Integer> boc = cfg.blockOutChannels();
        int levels = boc.size(), groups = cfg.normNumGroups(), lc = cfg.latentChannels(), last = boc.get(levels - 1);

        // encoder: conv_in, down_blocks, mid_block, conv_norm_out, conv_out
        encConvIn = own(layers.add(new Conv2d("encoder.conv_in", cfg.inChannels(), boc.get(0), 3, 1, 1, true)));
        int outCh = boc.get(0);
        for (int i = 0; i < levels; i++) {
            int inCh = outCh;
            outCh = boc.get(i);
            String p = "encoder.down_blocks." + i;
            List<VaeResnetBlock> rs = new ArrayList<>();
            for (int j = 0; j < cfg.layersPerBlock(); j++)
                rs.add(new VaeResnetBlock(layers, p + ".resnets." + j, j == 0 ? inCh : outCh, outCh, groups, EPS));
            // Downsample2D(padding=0): F.pad (0, 1, 0, 1), then a 3x3 stride-2 conv without padding
            Conv2d dc = i < levels - 1
                    ? tag(layers.add(new Conv2d(p + ".downsamplers.0.conv", outCh, outCh, 3, 2, 0, true)), p + ".downsamplers.0")
                    : null;
            encDown.add(new DownLevel(Collections.unmodifiableList(rs), dc));
        }
        encMid = new VaeMidBlock(layers, "encoder.mid_block", last, groups, EPS, cfg.midBlockAddAttention());
        encNormOut = own(layers.add(new Norm("encoder.conv_norm_out", Norm.Type.GROUP, last, groups, EPS, true)));
        encConvOut = own(layers.add(new Conv2d("encoder.conv_out", last, 2 * lc, 3, 1, 1, true)));

        // decoder: conv_in, up_blocks (created before mid_block in vae.py), mid_block, conv_norm_out, conv_out
        decConvIn = own(layers.add(new Conv2d("decoder.conv_in", lc, last, 3, 1, 1, true)));
        List<Integer> rev = new ArrayList<>(boc);
        Collections.reverse(rev);
        outCh = rev.get(0);
        for (int i = 0; i < levels; i++) {
            int prev = outCh;
            outCh = rev.get(i);
            String p = "decoder.up_blocks." + i;
            List<VaeResnetBlock> rs = new ArrayList<>();
            for (int j = 0; j < cfg.layersPerBlock() + 1; j++)
                rs.add(new VaeResnetBlock(layers, p + ".resnets." + j, j == 0 ? prev : outCh, outCh, groups, EPS));
            Conv2d uc = i < levels - 1
                    ? tag(layers.add(new Conv2d(p + ".upsamplers.0.conv", outCh, outCh, 3, 1, 1, true)), p + ".upsamplers.0")
                    : null;
            decUp.add(new UpLevel(Collections.unmodifiableList(rs), uc));
        }
        decMid = new VaeMidBlock(layers, "decoder.mid_block", last, groups, EPS, cfg.midBlockAddAttention());
        decNormOut = own(layers.add(new Norm("decoder.conv_norm_out", Norm.Type.GROUP, boc.get(0), groups, EPS, true)));
        decConvOut = own(layers.add(new Conv2d("decoder.conv_out", boc.get(0), cfg.outChannels(), 3, 1, 1, true)));

        quantConv = cfg.useQuantConv() ? own(layers.add(new Conv2d("quant_conv", 2 * lc, 2 * lc, 1, 1, 0, true))) : null;
        postQuantConv = cfg.usePostQuantConv() ? own(layers.add(new Conv2d("post_quant_conv", lc, lc, 1, 1, 0, true))) : null;
    }

    private static <L extends Layer> L tag(L l, String block) {
        l.tag("block", block);
        return l;
    }

    private static <L extends Layer> L own(L l) { return tag(l, l.name()); }

    // ------------------------------------------------------------------ accessors

    public AutoencoderKLConfig config() { return cfg; }
    public LayerRegistry layers() { return layers; }
    /** "AutoencoderKL" (the config.json _class_name). */
    public String architecture() { return AutoencoderKLConfig.CLASS_NAME; }
    public float scalingFactor() { return cfg.scalingFactor(); }
    /** shift_factor, 0 when the config has none. */
    public float shiftFactor() { return cfg.shift(); }
    public int latentChannels() { return cfg.latentChannels(); }
    /** Image size / latent size (8 for Stable Diffusion). */
    public int downsampleFactor() { return cfg.downsampleFactor(); }

    /**
     * Fused kernels (GroupNorm+SiLU, one-pass attention) where no hook observes the intermediate they skip;
     * off = the explicit composition of single ops (the slow twin, for tests).
     */
    public void setFastPaths(boolean on) { fastPaths = on; }
    public boolean fastPaths() { return fastPaths; }

    // ------------------------------------------------------------------ weights

    /** All parameters by their full diffusers state_dict name, in AutoencoderKL.state_dict() order. */
    public Map<String, Tensor> stateDict() { return StateDicts.collect(layers, Map.of()); }

    public long parameterCount() {
        long n = 0;
        for (Tensor t : stateDict().values()) n += t.size();
        return n;
    }

    /**
     * Loads a diffusers state_dict. Strict: every tensor present with its exact shape, no unknown names, finite values;
     * errors name the tensors and {@code source}; a failed load leaves the model unchanged. The deprecated attention
     * names of old checkpoints ({@code query, key, value, proj_attn} under {@code mid_block.attentions.N}) are mapped
     * to {@code to_q, to_k, to_v, to_out.0} first, as diffusers' {@code _convert_deprecated_attention_blocks} does.
     */
    public void loadStateDict(Map<String, Tensor> sd, String source) {
        Map<String, Tensor> fixed = new LinkedHashMap<>();
        for (var e : sd.entrySet()) {
            String k = renameLegacy(e.getKey());
            if (fixed.put(k, e.getValue()) != null) throw new IllegalArgumentException(source + ": tensor '" + k
                    + "' is present under both its current and its deprecated attention name");
        }
        StateDicts.load(layers, new LinkedHashMap<>(), fixed, source, architecture());
    }

    private static final String[][] LEGACY = {
            {"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}};

    /** {@code <...>.attentions.<i>.query.weight} -> {@code <...>.attentions.<i>.to_q.weight} (likewise key, value, proj_attn). */
    static String renameLegacy(String k) {
        int a = k.lastIndexOf(".attentions.");
        if (a < 0) return k;
        int idxStart = a + ".attentions.".length(), dot = k.indexOf('.', idxStart);
        if (dot < 0) return k;
        for (int i = idxStart; i < dot; i++) if (!Character.isDigit(k.charAt(i))) return k;
        String rest = k.substring(dot + 1);
        for (String[] r : LEGACY)
            if (rest.equals(r[0] + ".weight") || rest.equals(r[0] + ".bias"))
                return k.substring(0, dot + 1) + r[1] + rest.substring(r[0].length());
        return k;
    }

    /**
     * Builds the model of {@code folder/config.json} and loads {@code folder/diffusion_pytorch_model.safetensors}: the heap
     * check of {@link MemoryBudget#require} first, then tensor by tensor from the mapped file into the parameters
     * ({@link MappedWeights#loadInPlace}); files with the deprecated attention names are read whole and renamed.
     */
    public static AutoencoderKL load(Path folder) throws IOException {
        Path cf = folder.resolve(CONFIG);
        if (!Files.isRegularFile(cf)) throw new NoSuchFileException(cf.toString(), null,
                "not an AutoencoderKL folder: no config.json");
        AutoencoderKL vae = new AutoencoderKL(AutoencoderKLConfig.fromJson(cf));
        Path wf = folder.resolve(WEIGHTS);
        if (!Files.isRegularFile(wf)) throw new NoSuchFileException(wf.toString(), null,
                "weights file missing (AutoencoderKL folders hold " + WEIGHTS + ")");
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            MemoryBudget.require(MappedWeights.float32Bytes(r), "AutoencoderKL " + folder);
            boolean legacy = r.names().stream().anyMatch(n -> !renameLegacy(n).equals(n));
            if (legacy) vae.loadStateDict(r.readAllFloat(), wf.toString());   // small old checkpoints: renamed in the heap
            else MappedWeights.loadInPlace(vae.stateDict(), r, vae.architecture());
        }
        return vae;
    }

    /** Writes config.json and the F32 weights into {@code folder}, each atomically. */
    public void save(Path folder, Map<String, String> metadata) throws IOException {
        Files.createDirectories(folder);
        SafetensorsWriter w = new SafetensorsWriter();
        w.metadata("format", "pt");
        if (metadata != null) metadata.forEach(w::metadata);
        for (var e : stateDict().entrySet()) w.add(e.getKey(), e.getValue());
        w.write(folder.resolve(WEIGHTS));
        Json.write(folder.resolve(CONFIG), cfg.toJson());
    }

    // ------------------------------------------------------------------ latent scaling

    /** Diffusion-space latents -> the VAE's z: latents / scaling_factor + shift_factor. */
    public Tensor unscaleLatents(Tensor latents) { return VaeOps.unscaleLatents(latents, cfg.scalingFactor(), cfg.shift()); }

    /** The VAE's z -> diffusion-space latents: (z - shift_factor) * scaling_factor. */
    public Tensor scaleLatents(Tensor z) { return VaeOps.scaleLatents(z, cfg.scalingFactor(), cfg.shift()); }

    // ------------------------------------------------------------------ decode

    /** Same as {@link #decodeScaled}: diffusion-space latents [N, latent_channels, h, w] -> images [N, out, 8h, 8w]. */
    public Tensor decode(Tensor latents) { return decodeScaled(latents); }

    /** Applies 1/scaling_factor (and the shift) first, then {@link #decodeRaw}, as the SD pipelines do. */
    public Tensor decodeScaled(Tensor latents) {
        checkLatents(latents);
        return decodeRaw(unscaleLatents(latents));
    }

    /** diffusers' {@code AutoencoderKL.decode(z)}: z in the VAE's own latent space (no scaling). */
    public Tensor decodeRaw(Tensor z) {
        checkLatents(z);
        boolean fast = fastPaths;
        ForwardContext ctx = ForwardContext.NONE;
        Tensor h = postQuantConv != null ? postQuantConv.forward(z, ctx) : z;
        h = decConvIn.forward(h, ctx);
        h = decMid.forward(h, ctx, fast);
        for (UpLevel lv : decUp) {
            for (VaeResnetBlock r : lv.resnets) h = r.forward(h, ctx, fast);
            if (lv.upConv != null) h = lv.upConv.forward(Ops.upsampleNearest2x(h), ctx);
        }
        h = normAct(decNormOut, h, ctx, fast);
        return decConvOut.forward(h, ctx);
    }

    // ------------------------------------------------------------------ encode

    /** The posterior q(z | images) (z space): diffusers' {@code AutoencoderKL.encode(x).latent_dist}. */
    public DiagonalGaussian encode(Tensor images) { return DiagonalGaussian.fromMoments(moments(images)); }

    /** quant_conv(encoder(images)) = cat(mean, logvar) [N, 2 * latent_channels, H/8, W/8], before the logvar clamp. */
    public Tensor moments(Tensor images) {
        checkImages(images);
        boolean fast = fastPaths;
        ForwardContext ctx = ForwardContext.NONE;
        Tensor h = encConvIn.forward(images, ctx);
        for (DownLevel lv : encDown) {
            for (VaeResnetBlock r : lv.resnets) h = r.forward(h, ctx, fast);
            if (lv.downConv != null) h = lv.downConv.forward(ConvOps.pad(h, 0, 1, 0, 1), ctx);
        }
        h = encMid.forward(h, ctx, fast);
        h = normAct(encNormOut, h, ctx, fast);
        h = encConvOut.forward(h, ctx);
        return quantConv != null ? quantConv.forward(h, ctx) : h;
    }

    /** Diffusion-space latents of the posterior mean: scaling_factor * (mean - shift_factor). */
    public Tensor encodeMean(Tensor images) { return scaleLatents(encode(images).mean()); }

    /**
     * Diffusion-space latents of a posterior sample: scaling_factor * (mean + exp(0.5 logvar) * noise - shift_factor),
     * with {@link DiagonalGaussian#sample(long) seeded noise} (batch element i uses noise sample i).
     */
    public Tensor encodeSample(Tensor images, long seed) { return scaleLatents(encode(images).sample(seed)); }

    // ------------------------------------------------------------------ checks and shared helpers

    private void checkLatents(Tensor z) {
        if (z == null || z.rank() != 4) throw new IllegalArgumentException("AutoencoderKL latents must be [N, C, h, w], got "
                + (z == null ? "null" : Arrays.toString(z.shape())));
        if (z.dim(1) != cfg.latentChannels()) throw new IllegalArgumentException("AutoencoderKL latents have " + z.dim(1)
                + " channels, latent_channels is " + cfg.latentChannels());
        if (z.dim(0) < 1 || z.dim(2) < 1 || z.dim(3) < 1) throw new IllegalArgumentException(
                "AutoencoderKL latents must be non-empty, got " + Arrays.toString(z.shape()));
    }

    private void checkImages(Tensor x) {
        if (x == null || x.rank() != 4) throw new IllegalArgumentException("AutoencoderKL images must be [N, C, H, W], got "
                + (x == null ? "null" : Arrays.toString(x.shape())));
        int f = cfg.downsampleFactor();
        if (x.dim(1) != cfg.inChannels()) throw new IllegalArgumentException("AutoencoderKL images have " + x.dim(1)
                + " channels, in_channels is " + cfg.inChannels());
        if (x.dim(0) < 1 || x.dim(2) < 1 || x.dim(3) < 1 || x.dim(2) % f != 0 || x.dim(3) % f != 0)
            throw new IllegalArgumentException("AutoencoderKL images " + Arrays.toString(x.shape()) + ": height and width must be "
                    + "positive multiples of " + f + " (2^(levels-1))");
    }

    /**
     * SiLU(GroupNorm(x)): fused in one kernel when {@code fast} and the norm has no hooks (nobody may observe its
     * output), else the norm layer's own forward followed by SiLU.
     */
    static Tensor normAct(Norm norm, Tensor x, ForwardContext ctx, boolean fast) {
        if (fast && norm.hooks().isEmpty())
            return ConvOps.groupNormAct(x, norm.groups(), norm.param("weight"), norm.param("bias"), norm.eps(), null, true);
        return ConvOps.silu(norm.forward(x, ctx));
    }

    /** The layer's output, safe to modify in place: a copy when hooks may hold on to it. */
    static Tensor owned(Layer l, Tensor y) {
        return l.hooks().isEmpty() ? y : y.copy();
    }
}
