package io.diffquant.engine.model.vae;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;

/**
 * The config.json of a diffusers AutoencoderKL (huggingface/diffusers src/diffusers/models/autoencoders/
 * autoencoder_kl.py, {@code AutoencoderKL.__init__}): same field names, defaults and null semantics. Fields this
 * engine does not use ({@code _diffusers_version}, {@code force_upcast}, {@code latents_mean}, {@code latents_std},
 * ...) are ignored; known fields with a wrong type or an unsupported value are errors naming the file and the field.
 *
 * @param sampleSize    {@code sample_size} (only informative here: diffusers uses it for tiling); a square
 *                      {@code [s, s]} list is accepted
 * @param scalingFactor {@code scaling_factor}: diffusion-space latents = scaling_factor * (z - shift_factor)
 * @param shiftFactor   {@code shift_factor}; null (the default, SD 1.x/2.x) means no shift
 */
public record AutoencoderKLConfig(
        int inChannels,
        int outChannels,
        List<String> downBlockTypes,
        List<String> upBlockTypes,
        List<Integer> blockOutChannels,
        int layersPerBlock,
        String actFn,
        int latentChannels,
        int normNumGroups,
        int sampleSize,
        float scalingFactor,
        Float shiftFactor,
        boolean useQuantConv,
        boolean usePostQuantConv,
        boolean midBlockAddAttention) {

    public static final String CLASS_NAME = "AutoencoderKL";
    public static final String DOWN_TYPE = "DownEncoderBlock2D";
    public static final String UP_TYPE = "UpDecoderBlock2D";
    /** diffusers' default {@code scaling_factor} (Stable Diffusion 1.x/2.x, Rombach et al. 2022, sec. 4.3.2 / D.1). */
    public static final float DEFAULT_SCALING_FACTOR = 0.18215f;

    public AutoencoderKLConfig {
        downBlockTypes = List.copyOf(downBlockTypes);
        upBlockTypes = List.copyOf(upBlockTypes);
        blockOutChannels = Collections.unmodifiableList(new ArrayList<>(blockOutChannels));
        validate(inChannels, outChannels, downBlockTypes, upBlockTypes, blockOutChannels, layersPerBlock, actFn,
                latentChannels, normNumGroups, sampleSize, scalingFactor, shiftFactor);
    }

    /** diffusers' defaults with the given channels (one down/up block per entry). */
    public static AutoencoderKLConfig defaults(List<Integer> blockOutChannels) {
        int n = blockOutChannels.size();
        return new AutoencoderKLConfig(3, 3, Collections.nCopies(n, DOWN_TYPE), Collections.nCopies(n, UP_TYPE),
                blockOutChannels, 1, "silu", 4, 32, 32, DEFAULT_SCALING_FACTOR, null, true, true, true);
    }

    /**
     * stabilityai/sd-vae-ft-ema (and the VAE of Stable Diffusion 1.x/2.x): block_out_channels [128, 256, 512, 512],
     * layers_per_block 2, latent_channels 4, norm_num_groups 32, sample_size 256, scaling_factor 0.18215.
     */
    public static AutoencoderKLConfig stableDiffusion() {
        return new AutoencoderKLConfig(3, 3, Collections.nCopies(4, DOWN_TYPE), Collections.nCopies(4, UP_TYPE),
                List.of(128, 256, 512, 512), 2, "silu", 4, 32, 256, DEFAULT_SCALING_FACTOR, null, true, true, true);
    }

    // ------------------------------------------------------------------ derived values

    public int levels() { return blockOutChannels.size(); }
    public int channels(int level) { return blockOutChannels.get(level); }
    /** Spatial factor between images and latents: 2^(levels - 1) (8 for Stable Diffusion). */
    public int downsampleFactor() { return 1 << (levels() - 1); }
    /** shift_factor, 0 when null. */
    public float shift() { return shiftFactor == null ? 0f : shiftFactor; }

    // ------------------------------------------------------------------ JSON

    public static AutoencoderKLConfig fromJson(Path file) throws JsonException {
        return fromJson(Json.read(file));
    }

    /** Parses a config.json object; every error names the source and the field. */
    public static AutoencoderKLConfig fromJson(JsonView v) throws JsonException {
        if (!v.isObject()) throw v.error("expected a JSON object (an AutoencoderKL config.json)");
        String cls = v.optString("_class_name", null);
        if (cls != null && !cls.equals(CLASS_NAME)) throw v.error("_class_name", "is \"" + cls + "\"; expected \"" + CLASS_NAME + "\"");
        List<Integer> boc = new ArrayList<>();
        if (v.has("block_out_channels")) {
            for (int c : v.requireIntArray("block_out_channels")) boc.add(c);
        } else {
            boc.add(64);
        }
        List<String> down = v.optStringList("down_block_types", List.of(DOWN_TYPE));
        List<String> up = v.optStringList("up_block_types", List.of(UP_TYPE));
        int sample = 32;
        Optional<JsonView> ss = v.opt("sample_size");
        if (ss.isPresent()) {
            JsonView s = ss.get();
            if (s.isArray()) {
                int[] hw = s.asIntArray();
                if (hw.length != 2 || hw[0] != hw[1]) throw s.error("expected an integer or a square [s, s] list");
                sample = hw[0];
            } else {
                sample = s.asInt();
            }
        }
        Float shift = null;
        if (v.has("shift_factor")) shift = (float) v.requireDouble("shift_factor");
        double sf = v.optDouble("scaling_factor", DEFAULT_SCALING_FACTOR);
        try {
            return new AutoencoderKLConfig(
                    v.optInt("in_channels", 3), v.optInt("out_channels", 3), down, up, boc,
                    v.optInt("layers_per_block", 1), v.optString("act_fn", "silu"), v.optInt("latent_channels", 4),
                    v.optInt("norm_num_groups", 32), sample, (float) sf, shift,
                    v.optBoolean("use_quant_conv", true), v.optBoolean("use_post_quant_conv", true),
                    v.optBoolean("mid_block_add_attention", true));
        } catch (BadField e) {
            throw v.error(e.field, e.detail);
        }
    }

    /** This config as a diffusers config.json object (every field AutoencoderKL writes, in sorted order). */
    public ObjectNode toJson() {
        ObjectNode o = Json.object();
        o.put("_class_name", CLASS_NAME);
        o.put("act_fn", actFn);
        ArrayNode b = o.putArray("block_out_channels");
        blockOutChannels.forEach(b::add);
        ArrayNode d = o.putArray("down_block_types");
        downBlockTypes.forEach(d::add);
        o.put("force_upcast", true);
        o.put("in_channels", inChannels);
        o.put("latent_channels", latentChannels);
        o.putNull("latents_mean");
        o.putNull("latents_std");
        o.put("layers_per_block", layersPerBlock);
        o.put("mid_block_add_attention", midBlockAddAttention);
        o.put("norm_num_groups", normNumGroups);
        o.put("out_channels", outChannels);
        o.put("sample_size", sampleSize);
        o.put("scaling_factor", scalingFactor);
        if (shiftFactor == null) o.putNull("shift_factor");
        else o.put("shift_factor", shiftFactor);
        ArrayNode u = o.putArray("up_block_types");
        upBlockTypes.forEach(u::add);
        o.put("use_post_quant_conv", usePostQuantConv);
        o.put("use_quant_conv", useQuantConv);
        return o;
    }

    // ------------------------------------------------------------------ validation

    /** A config value that is out of range: message "field: detail"; field and detail are kept for the JSON error. */
    static final class BadField extends IllegalArgumentException {
        final String field, detail;

        BadField(String field, String detail) {
            super("AutoencoderKL config: " + field + " " + detail);
            this.field = field;
            this.detail = detail;
        }
    }

    private static BadField bad(String field, String message) { return new BadField(field, message); }

    private static void validate(int inChannels, int outChannels, List<String> down, List<String> up, List<Integer> boc,
                                 int layersPerBlock, String actFn, int latentChannels, int normNumGroups, int sampleSize,
                                 float scalingFactor, Float shiftFactor) {
        if (inChannels < 1) throw bad("in_channels", "must be positive, got " + inChannels);
        if (outChannels < 1) throw bad("out_channels", "must be positive, got " + outChannels);
        if (latentChannels < 1) throw bad("latent_channels", "must be positive, got " + latentChannels);
        if (normNumGroups < 1) throw bad("norm_num_groups", "must be positive, got " + normNumGroups);
        if (layersPerBlock < 1) throw bad("layers_per_block", "must be at least 1, got " + layersPerBlock);
        if (sampleSize < 1) throw bad("sample_size", "must be positive, got " + sampleSize);
        if (boc.isEmpty()) throw bad("block_out_channels", "must not be empty");
        if (boc.size() > 12) throw bad("block_out_channels", "has " + boc.size() + " levels; at most 12 are supported");
        for (int i = 0; i < boc.size(); i++) {
            Integer c = boc.get(i);
            if (c == null || c < 1) throw bad("block_out_channels", "entry " + i + " must be a positive integer, got " + c);
            if (c % normNumGroups != 0) throw bad("block_out_channels", "entry " + i + " (" + c
                    + ") is not divisible by norm_num_groups " + normNumGroups);
        }
        if (down.size() != boc.size()) throw bad("down_block_types", "has " + down.size()
                + " entries but block_out_channels has " + boc.size());
        if (up.size() != boc.size()) throw bad("up_block_types", "has " + up.size()
                + " entries but block_out_channels has " + boc.size());
        for (int i = 0; i < down.size(); i++) if (!DOWN_TYPE.equals(down.get(i))) throw bad("down_block_types",
                "entry " + i + " is \"" + down.get(i) + "\"; only \"" + DOWN_TYPE + "\" is supported");
        for (int i = 0; i < up.size(); i++) if (!UP_TYPE.equals(up.get(i))) throw bad("up_block_types",
                "entry " + i + " is \"" + up.get(i) + "\"; only \"" + UP_TYPE + "\" is supported");
        if (!"silu".equals(actFn) && !"swish".equals(actFn)) throw bad("act_fn", "is \"" + actFn
                + "\"; only \"silu\" (alias \"swish\") is supported");
        if (!(scalingFactor > 0f) || !Float.isFinite(scalingFactor)) throw bad("scaling_factor",
                "must be a positive finite number, got " + scalingFactor);
        if (shiftFactor != null && !Float.isFinite(shiftFactor)) throw bad("shift_factor", "must be finite, got " + shiftFactor);
    }
}
