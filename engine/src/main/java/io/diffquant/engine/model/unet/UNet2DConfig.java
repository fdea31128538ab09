package io.diffquant.engine.model.unet;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The config.json of a diffusers UNet2DModel (huggingface/diffusers src/diffusers/models/unets/unet_2d.py,
 * {@code UNet2DModel.__init__}): same field names, defaults and null semantics. Fields this engine does not know
 * (e.g. {@code _diffusers_version}) are ignored; known fields with a wrong type or an unsupported value are errors
 * naming the file and the field.
 *
 * @param sampleSize         {@code sample_size}; null when the config leaves it open (a square [s, s] is accepted)
 * @param freqShift          {@code freq_shift} (Timesteps' downscale_freq_shift)
 * @param midBlockType       {@code mid_block_type}: "UNetMidBlock2D" or null (no mid block)
 * @param attentionHeadDim   {@code attention_head_dim}; null = one head spanning the block's channels
 * @param attnNormNumGroups  {@code attn_norm_num_groups}; null = norm_num_groups for "default" time scale shift,
 *                           no group norm in the mid-block attention otherwise
 * @param classEmbedType     {@code class_embed_type}: null, "timestep" or "identity"
 * @param numClassEmbeds     {@code num_class_embeds}; with class_embed_type null it creates an nn.Embedding
 * @param numTrainTimesteps  {@code num_train_timesteps} (rows of the "learned" time embedding)
 */
public record UNet2DConfig(
        Integer sampleSize,
        int inChannels,
        int outChannels,
        boolean centerInputSample,
        String timeEmbeddingType,
        Integer timeEmbeddingDim,
        float freqShift,
        boolean flipSinToCos,
        List<String> downBlockTypes,
        String midBlockType,
        List<String> upBlockTypes,
        List<Integer> blockOutChannels,
        int layersPerBlock,
        float midBlockScaleFactor,
        int downsamplePadding,
        String downsampleType,
        String upsampleType,
        float dropout,
        String actFn,
        Integer attentionHeadDim,
        int normNumGroups,
        Integer attnNormNumGroups,
        float normEps,
        String resnetTimeScaleShift,
        boolean addAttention,
        String classEmbedType,
        Integer numClassEmbeds,
        Integer numTrainTimesteps) {

    public static final String CLASS_NAME = "UNet2DModel";
    public static final List<String> DOWN_TYPES = List.of("DownBlock2D", "AttnDownBlock2D");
    public static final List<String> UP_TYPES = List.of("UpBlock2D", "AttnUpBlock2D");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public UNet2DConfig {
        downBlockTypes = List.copyOf(downBlockTypes);
        upBlockTypes = List.copyOf(upBlockTypes);
        blockOutChannels = List.copyOf(blockOutChannels);
        downBlockTypes = downBlockTypes.stream().map(UNet2DConfig::stripRes).toList();
        upBlockTypes = upBlockTypes.stream().map(UNet2DConfig::stripRes).toList();
        validate(sampleSize, inChannels, outChannels, timeEmbeddingType, timeEmbeddingDim, downBlockTypes, midBlockType,
                upBlockTypes, blockOutChannels, layersPerBlock, downsamplePadding, downsampleType, upsampleType, dropout,
                actFn, attentionHeadDim, normNumGroups, attnNormNumGroups, normEps, resnetTimeScaleShift, addAttention,
                classEmbedType, numClassEmbeds, numTrainTimesteps);
    }

    /** diffusers' get_down_block / get_up_block strip a leading "UNetRes". */
    private static String stripRes(String s) {
        return s != null && s.startsWith("UNetRes") ? s.substring(7) : s;
    }

    /** diffusers' defaults with the given block layout. */
    public static UNet2DConfig defaults(List<String> down, List<String> up, List<Integer> channels) {
        return new UNet2DConfig(null, 3, 3, false, "positional", null, 0f, true, down, "UNetMidBlock2D", up, channels,
                2, 1f, 1, "conv", "conv", 0f, "silu", 8, 32, null, 1e-5f, "default", true, null, null, null);
    }

    // ------------------------------------------------------------------ derived values (as UNet2DModel.__init__)

    public int levels() { return blockOutChannels.size(); }
    public int channels(int level) { return blockOutChannels.get(level); }
    /** time_embed_dim = time_embedding_dim or block_out_channels[0] * 4. */
    public int timeEmbedDim() { return timeEmbeddingDim != null ? timeEmbeddingDim : blockOutChannels.get(0) * 4; }
    /** Width of the time projection fed to time_embedding.linear_1. */
    public int timestepInputDim() { return "fourier".equals(timeEmbeddingType) ? 2 * channels(0) : channels(0); }
    public boolean scaleShift() { return "scale_shift".equals(resnetTimeScaleShift); }
    /** The head dimension of an attention block with the given channels (null attention_head_dim = channels). */
    public int headDim(int channels) { return attentionHeadDim != null ? attentionHeadDim : channels; }
    /** Groups of the mid-block attention's group_norm, or null when it has none. */
    public Integer midAttentionGroups() {
        if (attnNormNumGroups != null) return attnNormNumGroups;
        return "default".equals(resnetTimeScaleShift) ? normNumGroups : null;
    }
    public boolean hasMidBlock() { return midBlockType != null; }
    /** "embedding" (nn.Embedding), "timestep", "identity", or null (no class conditioning). */
    public String classEmbeddingKind() {
        if (classEmbedType == null) return numClassEmbeds != null ? "embedding" : null;
        return classEmbedType;
    }

    // ------------------------------------------------------------------ validation

    private static void validate(Integer sampleSize, int inChannels, int outChannels, String timeEmbeddingType,
                                 Integer timeEmbeddingDim, List<String> down, String midBlockType, List<String> up,
                                 List<Integer> channels, int layersPerBlock, int downsamplePadding, String downsampleType,
                                 String upsampleType, float dropout, String actFn, Integer attentionHeadDim,
                                 int normNumGroups, Integer attnNormNumGroups, float normEps, String tss,
                                 boolean addAttention, String classEmbedType, Integer numClassEmbeds,
                                 Integer numTrainTimesteps) {
        if (inChannels < 1) throw bad("in_channels", "must be positive, got " + inChannels);
        if (outChannels < 1) throw bad("out_channels", "must be positive, got " + outChannels);
        oneOf("time_embedding_type", timeEmbeddingType, "positional", "fourier", "learned");
        if ("learned".equals(timeEmbeddingType) && (numTrainTimesteps == null || numTrainTimesteps < 1))
            throw bad("num_train_timesteps", "must be a positive integer for time_embedding_type \"learned\", got " + numTrainTimesteps);
        if (timeEmbeddingDim != null && timeEmbeddingDim < 1) throw bad("time_embedding_dim", "must be positive, got " + timeEmbeddingDim);
        if (channels.isEmpty()) throw bad("block_out_channels", "must not be empty");
        for (int i = 0; i < channels.size(); i++) {
            Integer c = channels.get(i);
            if (c == null || c < 1) throw bad("block_out_channels", "entry " + i + " must be a positive integer, got " + c);
            if (c % normNumGroups != 0) throw bad("block_out_channels", "entry " + i + " (" + c
                    + ") is not divisible by norm_num_groups " + normNumGroups);
        }
        if (down.size() != channels.size()) throw bad("down_block_types", "has " + down.size()
                + " entries but block_out_channels has " + channels.size());
        if (up.size() != down.size()) throw bad("up_block_types", "has " + up.size()
                + " entries but down_block_types has " + down.size());
        for (int i = 0; i < down.size(); i++) if (!DOWN_TYPES.contains(down.get(i))) throw bad("down_block_types",
                "entry " + i + " is \"" + down.get(i) + "\"; supported: " + String.join(", ", DOWN_TYPES) + " (optionally prefixed UNetRes)");
        for (int i = 0; i < up.size(); i++) if (!UP_TYPES.contains(up.get(i))) throw bad("up_block_types",
                "entry " + i + " is \"" + up.get(i) + "\"; supported: " + String.join(", ", UP_TYPES) + " (optionally prefixed UNetRes)");
        if (midBlockType != null) oneOf("mid_block_type", midBlockType, "UNetMidBlock2D");
        if (layersPerBlock < 1) throw bad("layers_per_block", "must be at least 1, got " + layersPerBlock);
        if (downsamplePadding < 0) throw bad("downsample_padding", "must be >= 0, got " + downsamplePadding);
        oneOf("downsample_type", downsampleType, "conv", "resnet");
        oneOf("upsample_type", upsampleType, "conv", "resnet");
        if (!(dropout >= 0f && dropout < 1f)) throw bad("dropout", "must be in [0, 1), got " + dropout);
        oneOf("act_fn", actFn, "silu", "swish");
        if (normNumGroups < 1) throw bad("norm_num_groups", "must be positive, got " + normNumGroups);
        if (!(normEps > 0f)) throw bad("norm_eps", "must be positive, got " + normEps);
        oneOf("resnet_time_scale_shift", tss, "default", "scale_shift");
        if (classEmbedType != null) oneOf("class_embed_type", classEmbedType, "timestep", "identity");
        if (numClassEmbeds != null && numClassEmbeds < 1) throw bad("num_class_embeds", "must be positive, got " + numClassEmbeds);
        if (attentionHeadDim != null && attentionHeadDim < 1) throw bad("attention_head_dim", "must be positive or null, got " + attentionHeadDim);
        // every attention block needs at least one head: heads = channels // head_dim
        int last = channels.get(channels.size() - 1);
        for (int i = 0; i < down.size(); i++) {
            if (down.get(i).startsWith("Attn")) checkHeads(attentionHeadDim, channels.get(i), "down_blocks." + i);
            int rev = channels.get(channels.size() - 1 - i);
            if (up.get(i).startsWith("Attn")) checkHeads(attentionHeadDim, rev, "up_blocks." + i);
        }
        if (midBlockType != null && addAttention) {
            checkHeads(attentionHeadDim, last, "mid_block");
            Integer g = attnNormNumGroups != null ? attnNormNumGroups : ("default".equals(tss) ? normNumGroups : null);
            if (g != null && (g < 1 || last % g != 0)) throw bad("attn_norm_num_groups", g + " groups do not divide the "
                    + last + " channels of the mid-block attention");
        }
        if (sampleSize != null) {
            int f = 1 << (channels.size() - 1);
            if (sampleSize < 1 || sampleSize % f != 0) throw bad("sample_size", sampleSize + " is not a positive multiple of "
                    + f + " (2^(levels-1))");
        }
    }

    private static void checkHeads(Integer headDim, int channels, String where) {
        if (headDim != null && headDim > channels) throw bad("attention_head_dim", headDim + " exceeds the " + channels
                + " channels of the attention in " + where + " (heads = channels // attention_head_dim would be 0)");
    }

    private static void oneOf(String field, String v, String... allowed) {
        for (String a : allowed) if (a.equals(v)) return;
        throw bad(field, "unsupported value " + (v == null ? "null" : "\"" + v + "\"") + "; supported: " + String.join(", ", allowed));
    }

    private static IllegalArgumentException bad(String field, String msg) {
        return new IllegalArgumentException("UNet2DModel config field '" + field + "' " + msg);
    }

    // ------------------------------------------------------------------ JSON

    /** Reads a diffusers config.json. Errors name the file and the field. */
    public static UNet2DConfig fromJson(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read UNet config: " + e.getMessage(), e);
        }
        return fromJson(text, file.toString());
    }

    /** Parses config JSON text; {@code source} (e.g. the file name) prefixes every error. */
    public static UNet2DConfig fromJson(String text, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(source + ": not valid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " at line " + e.getLocation().getLineNr() : ""), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(source + ": a UNet config must be a JSON object");
        try {
            return parse((ObjectNode) root);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + ": " + e.getMessage(), e);
        }
    }

    private static UNet2DConfig parse(ObjectNode o) {
        JsonNode cls = o.get("_class_name");
        if (cls != null && !cls.isNull() && !CLASS_NAME.equals(cls.asText()))
            throw new IllegalArgumentException("UNet2DModel config field '_class_name' is \"" + cls.asText() + "\"; this loader reads " + CLASS_NAME + " configs");
        Integer sampleSize = sampleSize(o);
        return new UNet2DConfig(
                sampleSize,
                intField(o, "in_channels", 3),
                intField(o, "out_channels", 3),
                boolField(o, "center_input_sample", false),
                strField(o, "time_embedding_type", "positional", false),
                optInt(o, "time_embedding_dim", null),
                floatField(o, "freq_shift", 0f),
                boolField(o, "flip_sin_to_cos", true),
                strList(o, "down_block_types", List.of("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")),
                strField(o, "mid_block_type", "UNetMidBlock2D", true),
                strList(o, "up_block_types", List.of("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
                intList(o, "block_out_channels", List.of(224, 448, 672, 896)),
                intField(o, "layers_per_block", 2),
                floatField(o, "mid_block_scale_factor", 1f),
                intField(o, "downsample_padding", 1),
                strField(o, "downsample_type", "conv", false),
                strField(o, "upsample_type", "conv", false),
                floatField(o, "dropout", 0f),
                strField(o, "act_fn", "silu", false),
                optInt(o, "attention_head_dim", 8),
                intField(o, "norm_num_groups", 32),
                optInt(o, "attn_norm_num_groups", null),
                floatField(o, "norm_eps", 1e-5f),
                strField(o, "resnet_time_scale_shift", "default", false),
                boolField(o, "add_attention", true),
                strField(o, "class_embed_type", null, true),
                optInt(o, "num_class_embeds", null),
                optInt(o, "num_train_timesteps", null));
    }

    private static Integer sampleSize(ObjectNode o) {
        JsonNode n = o.get("sample_size");
        if (n == null || n.isNull()) return null;
        if (n.isArray()) {
            if (n.size() != 2 || !isInt(n.get(0)) || !isInt(n.get(1))) throw new IllegalArgumentException(
                    "UNet2DModel config field 'sample_size' must be an integer or [height, width], got " + n);
            if (n.get(0).asInt() != n.get(1).asInt()) throw new IllegalArgumentException(
                    "UNet2DModel config field 'sample_size' " + n + ": only square samples are supported");
            return n.get(0).asInt();
        }
        if (!isInt(n)) throw new IllegalArgumentException("UNet2DModel config field 'sample_size' must be an integer, got " + n);
        return n.asInt();
    }

    private static boolean isInt(JsonNode n) {
        return n != null && (n.isIntegralNumber() && n.canConvertToInt()
                || n.isFloatingPointNumber() && n.asDouble() == Math.rint(n.asDouble()) && Math.abs(n.asDouble()) < 1e9);
    }

    private static int intField(ObjectNode o, String f, int def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (!isInt(n)) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be an integer, got " + n);
        return n.asInt();
    }

    private static Integer optInt(ObjectNode o, String f, Integer def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (n.isNull()) return null;
        if (!isInt(n)) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be an integer or null, got " + n);
        return n.asInt();
    }

    private static float floatField(ObjectNode o, String f, float def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (!n.isNumber()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be a number, got " + n);
        return (float) n.asDouble();
    }

    private static boolean boolField(ObjectNode o, String f, boolean def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (!n.isBoolean()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be true or false, got " + n);
        return n.asBoolean();
    }

    private static String strField(ObjectNode o, String f, String def, boolean nullable) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (n.isNull()) {
            if (nullable) return null;
            throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be a string, got null");
        }
        if (!n.isTextual()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be a string, got " + n);
        return n.asText();
    }

    private static List<String> strList(ObjectNode o, String f, List<String> def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (!n.isArray()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be a list of strings, got " + n);
        List<String> r = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            if (!n.get(i).isTextual()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' entry " + i + " must be a string, got " + n.get(i));
            r.add(n.get(i).asText());
        }
        return r;
    }

    private static List<Integer> intList(ObjectNode o, String f, List<Integer> def) {
        JsonNode n = o.get(f);
        if (n == null) return def;
        if (!n.isArray()) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' must be a list of integers, got " + n);
        List<Integer> r = new ArrayList<>();
        for (int i = 0; i < n.size(); i++) {
            if (!isInt(n.get(i))) throw new IllegalArgumentException("UNet2DModel config field '" + f + "' entry " + i + " must be an integer, got " + n.get(i));
            r.add(n.get(i).asInt());
        }
        return r;
    }

    /** The config as diffusers writes it (every field, diffusers names, "_class_name": "UNet2DModel"). */
    public String toJson() {
        ObjectNode o = JSON.createObjectNode();
        o.put("_class_name", CLASS_NAME);
        o.put("act_fn", actFn);
        o.put("add_attention", addAttention);
        putInt(o, "attention_head_dim", attentionHeadDim);
        putInt(o, "attn_norm_num_groups", attnNormNumGroups);
        ArrayNode boc = o.putArray("block_out_channels");
        blockOutChannels.forEach(boc::add);
        o.put("center_input_sample", centerInputSample);
        o.put("class_embed_type", classEmbedType);
        ArrayNode down = o.putArray("down_block_types");
        downBlockTypes.forEach(down::add);
        o.put("downsample_padding", downsamplePadding);
        o.put("downsample_type", downsampleType);
        putNumber(o, "dropout", dropout);
        o.put("flip_sin_to_cos", flipSinToCos);
        putNumber(o, "freq_shift", freqShift);
        o.put("in_channels", inChannels);
        o.put("layers_per_block", layersPerBlock);
        putNumber(o, "mid_block_scale_factor", midBlockScaleFactor);
        o.put("mid_block_type", midBlockType);
        putNumber(o, "norm_eps", normEps);
        o.put("norm_num_groups", normNumGroups);
        putInt(o, "num_class_embeds", numClassEmbeds);
        putInt(o, "num_train_timesteps", numTrainTimesteps);
        o.put("out_channels", outChannels);
        o.put("resnet_time_scale_shift", resnetTimeScaleShift);
        putInt(o, "sample_size", sampleSize);
        putInt(o, "time_embedding_dim", timeEmbeddingDim);
        o.put("time_embedding_type", timeEmbeddingType);
        ArrayNode upn = o.putArray("up_block_types");
        upBlockTypes.forEach(upn::add);
        o.put("upsample_type", upsampleType);
        try {
            return JSON.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void putInt(ObjectNode o, String f, Integer v) {
        if (v == null) o.putNull(f);
        else o.put(f, v.intValue());
    }

    /** Integral values as JSON integers (diffusers writes 1, not 1.0), others as the shortest float text. */
    private static void putNumber(ObjectNode o, String f, float v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e9) o.put(f, (int) v);
        else o.put(f, Double.parseDouble(Float.toString(v)));
    }
}
