package io.diffquant.engine.model.dit;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The DiT constructor arguments of facebookresearch/DiT models.py ({@code DiT(input_size, patch_size, in_channels,
 * hidden_size, depth, num_heads, mlp_ratio, class_dropout_prob, num_classes, learn_sigma)}); in config.json they
 * appear under exactly those snake_case names, next to {@code "_class_name": "DiT"}. The registry
 * {@link #named} holds the official DiT-S/B/L/XL x /2, /4, /8 sizes.
 */
public record DiTConfig(int inputSize, int patchSize, int inChannels, int hiddenSize, int depth, int numHeads,
                        double mlpRatio, double classDropoutProb, int numClasses, boolean learnSigma) {

    public static final String CLASS_NAME = "DiT";
    /** The JSON field names, in the official constructor order. */
    public static final List<String> FIELDS = List.of("input_size", "patch_size", "in_channels", "hidden_size", "depth",
            "num_heads", "mlp_ratio", "class_dropout_prob", "num_classes", "learn_sigma");

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** depth, hidden_size, num_heads of the official model families. */
    private static final Map<String, int[]> FAMILIES = new LinkedHashMap<>();
    static {
        FAMILIES.put("XL", new int[] {28, 1152, 16});
        FAMILIES.put("L", new int[] {24, 1024, 16});
        FAMILIES.put("B", new int[] {12, 768, 12});
        FAMILIES.put("S", new int[] {12, 384, 6});
    }

    public DiTConfig {
        validate("DiT config", inputSize, patchSize, inChannels, hiddenSize, depth, numHeads, mlpRatio,
                classDropoutProb, numClasses);
    }

    // ------------------------------------------------------------------ derived sizes

    /** Patches per side (input_size / patch_size). */
    public int gridSize() { return inputSize / patchSize; }
    /** Number of tokens T. */
    public int tokens() { return gridSize() * gridSize(); }
    public int headDim() { return hiddenSize / numHeads; }
    /** int(hidden_size * mlp_ratio), as timm's Mlp is built in DiTBlock. */
    public int mlpHidden() { return (int) (hiddenSize * mlpRatio); }
    public int outChannels() { return learnSigma ? 2 * inChannels : inChannels; }
    /** True when the model has a label embedder (num_classes > 0). */
    public boolean classConditional() { return numClasses > 0; }
    /** Rows of y_embedder.embedding_table: num_classes, plus the null (CFG) class when class_dropout_prob > 0. */
    public int embeddingRows() { return numClasses + (classDropoutProb > 0 ? 1 : 0); }

    // ------------------------------------------------------------------ registry

    /** The official model names, e.g. "DiT-XL/2". */
    public static List<String> registryNames() {
        List<String> r = new ArrayList<>();
        for (String f : FAMILIES.keySet()) for (int p : new int[] {2, 4, 8}) r.add("DiT-" + f + "/" + p);
        return List.copyOf(r);
    }

    /**
     * An official DiT size (depth/hidden/heads/patch from the name) with in_channels 4, mlp_ratio 4.0 and
     * class_dropout_prob 0.1, as DiT_models[name](input_size=..., num_classes=..., learn_sigma=...).
     */
    public static DiTConfig named(String name, int inputSize, int numClasses, boolean learnSigma) {
        if (name != null && name.startsWith("DiT-")) {
            int slash = name.indexOf('/');
            if (slash > 0) {
                int[] fam = FAMILIES.get(name.substring(4, slash));
                String p = name.substring(slash + 1);
                if (fam != null && (p.equals("2") || p.equals("4") || p.equals("8")))
                    return new DiTConfig(inputSize, Integer.parseInt(p), 4, fam[1], fam[0], fam[2], 4.0, 0.1,
                            numClasses, learnSigma);
            }
        }
        throw new IllegalArgumentException("unknown DiT model '" + name + "'; known: " + registryNames());
    }

    // ------------------------------------------------------------------ JSON

    /** Reads a config.json with {@code "_class_name": "DiT"} and every constructor argument; errors name file and field. */
    public static DiTConfig fromJson(Path configJson) {
        String src = configJson.toString();
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(configJson));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(src + ": not valid JSON (" + e.getOriginalMessage() + ")", e);
        } catch (IOException e) {
            throw new UncheckedIOException(src + ": cannot read the model config (" + e + ")", e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(src + ": expected a JSON object");
        JsonNode cls = root.get("_class_name");
        if (cls == null) throw new IllegalArgumentException(src + ": _class_name is missing (expected \"DiT\")");
        if (!cls.isTextual() || !CLASS_NAME.equals(cls.asText()))
            throw new IllegalArgumentException(src + ": _class_name is " + cls + ", expected \"DiT\"");
        int inputSize = intField(root, src, "input_size");
        int patchSize = intField(root, src, "patch_size");
        int inChannels = intField(root, src, "in_channels");
        int hidden = intField(root, src, "hidden_size");
        int depth = intField(root, src, "depth");
        int heads = intField(root, src, "num_heads");
        double mlpRatio = numberField(root, src, "mlp_ratio");
        double dropout = numberField(root, src, "class_dropout_prob");
        int numClasses = intField(root, src, "num_classes");
        JsonNode ls = root.get("learn_sigma");
        if (ls == null) throw new IllegalArgumentException(src + ": learn_sigma is missing");
        if (!ls.isBoolean()) throw new IllegalArgumentException(src + ": learn_sigma must be true or false, got " + ls);
        validate(src, inputSize, patchSize, inChannels, hidden, depth, heads, mlpRatio, dropout, numClasses);
        return new DiTConfig(inputSize, patchSize, inChannels, hidden, depth, heads, mlpRatio, dropout, numClasses,
                ls.booleanValue());
    }

    /** The config.json text: {@code _class_name} then the constructor arguments under their official names. */
    public String toJson() {
        ObjectNode o = JSON.createObjectNode();
        o.put("_class_name", CLASS_NAME);
        o.put("input_size", inputSize);
        o.put("patch_size", patchSize);
        o.put("in_channels", inChannels);
        o.put("hidden_size", hiddenSize);
        o.put("depth", depth);
        o.put("num_heads", numHeads);
        o.put("mlp_ratio", mlpRatio);
        o.put("class_dropout_prob", classDropoutProb);
        o.put("num_classes", numClasses);
        o.put("learn_sigma", learnSigma);
        try {
            return JSON.writeValueAsString(o) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int intField(JsonNode root, String src, String field) {
        JsonNode n = root.get(field);
        if (n == null) throw new IllegalArgumentException(src + ": " + field + " is missing");
        if (!n.isIntegralNumber() || !n.canConvertToInt())
            throw new IllegalArgumentException(src + ": " + field + " must be an integer, got " + n);
        return n.intValue();
    }

    private static double numberField(JsonNode root, String src, String field) {
        JsonNode n = root.get(field);
        if (n == null) throw new IllegalArgumentException(src + ": " + field + " is missing");
        if (!n.isNumber()) throw new IllegalArgumentException(src + ": " + field + " must be a number, got " + n);
        return n.doubleValue();
    }

    private static void validate(String src, int inputSize, int patchSize, int inChannels, int hidden, int depth,
                                 int heads, double mlpRatio, double dropout, int numClasses) {
        positive(src, "input_size", inputSize);
        positive(src, "patch_size", patchSize);
        positive(src, "in_channels", inChannels);
        positive(src, "hidden_size", hidden);
        positive(src, "depth", depth);
        positive(src, "num_heads", heads);
        if (inputSize % patchSize != 0) throw new IllegalArgumentException(src + ": input_size " + inputSize
                + " is not divisible by patch_size " + patchSize);
        if (hidden % heads != 0) throw new IllegalArgumentException(src + ": hidden_size " + hidden
                + " is not divisible by num_heads " + heads);
        if (hidden % 4 != 0) throw new IllegalArgumentException(src + ": hidden_size " + hidden
                + " is not divisible by 4 (the 2-D sin-cos position embedding needs it)");
        if (!(mlpRatio > 0) || Double.isInfinite(mlpRatio) || (int) (hidden * mlpRatio) < 1)
            throw new IllegalArgumentException(src + ": mlp_ratio " + mlpRatio + " must be positive and give a hidden MLP width >= 1");
        if ((long) hidden * mlpRatio > 1 << 20) throw new IllegalArgumentException(src + ": mlp_ratio " + mlpRatio + " is too large");
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException(src + ": class_dropout_prob " + dropout
                + " must be in [0, 1)");
        if (numClasses < 0) throw new IllegalArgumentException(src + ": num_classes " + numClasses + " must be >= 0");
        long tokens = (long) (inputSize / patchSize) * (inputSize / patchSize);
        if (tokens * hidden > Integer.MAX_VALUE / 4) throw new IllegalArgumentException(src + ": input_size " + inputSize
                + " with patch_size " + patchSize + " and hidden_size " + hidden + " is too large");
    }

    private static void positive(String src, String field, int v) {
        if (v <= 0) throw new IllegalArgumentException(src + ": " + field + " must be a positive integer, got " + v);
    }
}
