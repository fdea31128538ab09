package io.diffquant.engine.quant.config;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Which model a config or a calibration cache belongs to: a display name, the architecture (config.json
 * {@code _class_name}), the SHA-256 of the weights and the SHA-256 of the structure. Both hashes are over the
 * model's state_dict in model order, so they do not depend on the file's dtype or tensor order:
 * structure = sha256 of every (name, shape); weights = sha256 of every (name, shape, float32 little-endian values).
 * A config whose hashes differ from the model's is refused unless forced.
 */
public record ModelIdentity(String name, String architecture, String weightsSha256, String structureSha256) {
    public static final Set<String> FIELDS = new LinkedHashSet<>(List.of("name", "architecture", "weights_sha256", "structure_sha256"));

    public ModelIdentity {
        if (architecture == null || architecture.isBlank()) throw new IllegalArgumentException("model identity needs an architecture");
        if (name == null) name = "";
    }

    /** The identity of a loaded model (hashes its weights: a few hundred MB/s). */
    public static ModelIdentity of(DiffusionModel model, String name) {
        try {
            MessageDigest w = MessageDigest.getInstance("SHA-256"), s = MessageDigest.getInstance("SHA-256");
            ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
            for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) {
                byte[] head = header(e.getKey(), e.getValue().shape());
                w.update(head);
                s.update(head);
                float[] d = e.getValue().data();
                for (int i = 0; i < d.length; ) {
                    buf.clear();
                    int n = Math.min(d.length - i, buf.capacity() / 4);
                    buf.asFloatBuffer().put(d, i, n);
                    w.update(buf.array(), 0, 4 * n);
                    i += n;
                }
            }
            HexFormat hex = HexFormat.of();
            return new ModelIdentity(name, model.architecture(), hex.formatHex(w.digest()), hex.formatHex(s.digest()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] header(String name, int[] shape) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(n.length + 8 + 8 * shape.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(n).putInt(0).putInt(shape.length);
        for (int s : shape) b.putLong(s);
        return b.array();
    }

    /** Null when this identity is compatible with {@code actual}, else what differs (one sentence). */
    public String mismatch(ModelIdentity actual) {
        if (!architecture.equals(actual.architecture)) return "the config is for a " + architecture + ", the model is a " + actual.architecture;
        if (structureSha256 != null && !structureSha256.equals(actual.structureSha256)) return "the config is for a " + architecture
                + " with a different structure (layer names or shapes; structure sha256 " + abbrev(structureSha256) + ", this model "
                + abbrev(actual.structureSha256) + ")";
        if (weightsSha256 != null && !weightsSha256.equals(actual.weightsSha256)) return "the config was calibrated on other weights"
                + (name.isEmpty() ? "" : " (model '" + name + "')") + ": weights sha256 " + abbrev(weightsSha256) + ", this model's "
                + abbrev(actual.weightsSha256);
        return null;
    }

    private static String abbrev(String h) { return h == null ? "none" : h.length() > 12 ? h.substring(0, 12) + "..." : h; }

    public ObjectNode toJson() {
        ObjectNode o = ConfigJson.object();
        o.put("name", name);
        o.put("architecture", architecture);
        if (weightsSha256 != null) o.put("weights_sha256", weightsSha256);
        if (structureSha256 != null) o.put("structure_sha256", structureSha256);
        return o;
    }

    public static ModelIdentity fromJson(JsonView v) throws JsonException {
        ConfigJson.requireOnly(v, FIELDS);
        String arch = v.requireString("architecture");
        if (arch.isBlank()) throw v.error("architecture", "must not be empty");
        String w = v.optString("weights_sha256", null), s = v.optString("structure_sha256", null);
        if (w != null && !w.matches("[0-9a-f]{64}")) throw v.error("weights_sha256", "expected 64 lowercase hex digits, got \"" + w + "\"");
        if (s != null && !s.matches("[0-9a-f]{64}")) throw v.error("structure_sha256", "expected 64 lowercase hex digits, got \"" + s + "\"");
        return new ModelIdentity(v.optString("name", ""), arch, w, s);
    }
}
