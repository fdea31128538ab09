package io.diffquant.engine.quant.export;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.JsonException;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsException;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.model.DiffusionModel;
import io.diffquant.engine.quant.CalibratedParams;
import io.diffquant.engine.quant.LayerParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.WeightParams;
import io.diffquant.engine.quant.config.ConfigJson;
import io.diffquant.engine.quant.config.QuantConfig;
import io.diffquant.engine.quant.config.QuantConfigCodec;
import io.diffquant.engine.quant.config.QuantConfigs;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.Layout;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.PackedCodes;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.format.Quantizer;
import io.diffquant.engine.quant.spec.QuantPoint;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The quantized checkpoint (docs/export-format.md): one safetensors file with, for every quantized weight
 * {@code <name>.weight}, its codes packed at the format's bit width ({@link PackedCodes} layout, U8) as
 * {@code <name>.weight:codes}, the per-group scales {@code :scales} (F32 [R, S]), zero points {@code :zeros} (U8 [R, S],
 * asymmetric INT only), the decode table {@code :lut} (F64 [2^bits]) and, for NVFP4, {@code :tensor_scale} (F32 [1]);
 * every other tensor in F32 under its state_dict name; TFMQ's cached temporal features, when the config has them, as
 * {@code temporal:<feature>.codes} / {@code .scales} / {@code .zero_points} / {@code .tensor_scale} (the tensors of the
 * config sidecar {@code <config>.temporal.safetensors}); and in the metadata the quantization config, the model's
 * config.json and a JSON index of the quantized weights (format, granularity, shape, bits, group size, divisor).
 * The engine loads it back into a model whose fake-quantized forward is bitwise identical to the exporting one.
 */
public final class QuantizedCheckpoint {
    public static final String FORMAT = "diffquant-quantized-checkpoint";
    public static final String VERSION = "1";
    public static final String META_FORMAT = "format", META_VERSION = "format_version", META_CONFIG = "quant_config",
            META_MODEL_CONFIG = "model_config", META_INDEX = "quantized";
    /** Name prefix of the cached temporal features (TFMQ cache-based maintenance) stored in the checkpoint. */
    public static final String TEMPORAL_PREFIX = "temporal:";

    private QuantizedCheckpoint() {}

    /**
     * Sizes of a written checkpoint in bytes.
     * @param quantizedBytes codes + scales + zero points of the quantized weights
     * @param lutBytes       the decode tables (a constant per quantized tensor)
     * @param quantizedFp32Bytes the same weights in FP32
     * @param otherBytes     the tensors kept in FP32
     * @param temporalBytes  the cached temporal features (codes and parameters; 0 without a cache)
     */
    public record Summary(int quantizedTensors, long quantizedBytes, long lutBytes, long quantizedFp32Bytes, long otherBytes, long fileBytes,
                          long temporalBytes) {
        /** (codes + scales + zero points) / FP32 size of the quantized weights. */
        public double weightRatio() { return quantizedFp32Bytes == 0 ? 1 : (double) quantizedBytes / quantizedFp32Bytes; }
        /** File size / FP32 size of the whole model. */
        public double fileRatio() { return (double) fileBytes / (quantizedFp32Bytes + otherBytes); }
    }

    /** A checkpoint loaded back: the model (quantized weights replaced by their dequantized values), the config and the attached quantization. */
    public record Loaded(DiffusionModel model, QuantConfig config, QuantizedModel quantized) {}

    /** Writes the checkpoint of an attached quantized model and the config it was made from (atomically). */
    public static Summary write(QuantizedModel q, QuantConfig config, Path file) throws IOException {
        DiffusionModel model = q.model();
        SafetensorsWriter w = new SafetensorsWriter();
        ObjectNode index = ConfigJson.object();
        long qBytes = 0, lutBytes = 0, qFp = 0, other = 0;
        int count = 0;
        Map<String, LayerParams> stripped = new LinkedHashMap<>();
        // The embedded config keeps the activation parameters only: the weights' scales and zero points are the tensors
        // below (the loader rebuilds them from there), so repeating them as JSON text would only inflate the file
        // (3 MB of a 24 MB W4 group-128 DiT-S/2 checkpoint).
        // Every layer keeps its place (an entry {} for a weight-only layer) so that readConfig/load give back the params in
        // the original order.
        for (Map.Entry<String, LayerParams> e : q.params().layers().entrySet()) {
            stripped.put(e.getKey(), new LayerParams(null, e.getValue().input()));
        }
        for (Map.Entry<String, Tensor> e : model.stateDict().entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            QuantizedTensor qt = null;
            if (name.endsWith(".weight")) {
                String layer = name.substring(0, name.length() - ".weight".length());
                if (q.plan().point(layer) != null) qt = q.weightCodes(layer);
            }
            if (qt == null) {
                w.add(name, t);
                other += 4L * t.size();
                continue;
            }
            NumberFormat f = qt.format();
            GroupView v = qt.view();
            int r = v.rowStride() == 0 ? 1 : v.rows(), s = v.segmentsPerRow();
            if ((long) r * s != qt.params().groups()) throw new IllegalStateException(name + ": " + qt.params().groups() + " groups do not form ["
                    + r + ", " + s + "]");
            byte[] packed = qt.packed().bytes();
            w.addRaw(name + ":codes", DType.U8, new long[] {packed.length}, packed);
            w.add(name + ":scales", Tensor.of(qt.params().scales(), r, s));
            qBytes += packed.length + 4L * r * s;
            if (qt.params().hasZeroPoints()) {
                int[] z = qt.params().zeroPoints();
                byte[] zb = new byte[z.length];
                for (int i = 0; i < z.length; i++) {
                    if (z[i] < 0 || z[i] > 255) throw new IllegalStateException(name + ": zero point " + z[i] + " does not fit U8");
                    zb[i] = (byte) z[i];
                }
                w.addRaw(name + ":zeros", DType.U8, new long[] {r, s}, zb);
                qBytes += zb.length;
            }
            if (Float.floatToIntBits(qt.params().tensorScale()) != Float.floatToIntBits(1f)) {
                w.add(name + ":tensor_scale", Tensor.of(new float[] {qt.params().tensorScale()}, 1));
                qBytes += 4;
            }
            double[] lut = CodeTables.lut(f);
            ByteBuffer lb = ByteBuffer.allocate(8 * lut.length).order(ByteOrder.LITTLE_ENDIAN);
            for (double d : lut) lb.putDouble(d);
            w.addRaw(name + ":lut", DType.F64, new long[] {lut.length}, lb.array());
            lutBytes += 8L * lut.length;
            qFp += 4L * t.size();
            count++;
            ObjectNode ix = index.putObject(name);
            ix.put("format", f.id());
            ix.put("granularity", qt.granularity().id());
            ix.set("shape", ConfigJson.ints(t.shape()));
            ix.put("rows", v.rows());
            ix.put("cols", v.cols());
            ix.put("numel", t.size());
            ix.put("bits", f.codeBits());
            ix.put("group_size", v.segmentLength());
            ix.put("div", CodeTables.div(f));
        }
        QuantConfig embedded = config.withParams(new CalibratedParams(stripped)).withSource(null);
        // TFMQ's cached temporal features: their tensors beside the weights (the embedded config points at them)
        long temporal = embedded.temporal() != null && embedded.temporal().cached() != null ? embedded.temporal().cached().bytes() : 0;
        QuantConfigCodec.addTemporalTensors(embedded, w, TEMPORAL_PREFIX);
        w.metadata(META_FORMAT, FORMAT).metadata(META_VERSION, VERSION)
                .metadata(META_CONFIG, QuantConfigCodec.toJson(embedded, TEMPORAL_PREFIX))
                .metadata(META_MODEL_CONFIG, ModelFactory.configJson(model))
                .metadata(META_INDEX, ConfigJson.write(index));
        w.write(file);
        return new Summary(count, qBytes, lutBytes, qFp, other, Files.size(file), temporal);
    }

    /** Loads a checkpoint, building the model from its embedded config.json. */
    public static Loaded load(Path file) throws IOException {
        String modelConfig;
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            checkFormat(r);
            modelConfig = r.metadata().get(META_MODEL_CONFIG);
        }
        if (modelConfig == null) throw new SafetensorsException(file, null, "metadata '" + META_MODEL_CONFIG + "' is missing");
        return load(file, ModelFactory.create(modelConfig, file + " (metadata " + META_MODEL_CONFIG + ")"));
    }

    private static void checkFormat(SafetensorsReader r) throws SafetensorsException {
        Map<String, String> m = r.metadata();
        if (!FORMAT.equals(m.get(META_FORMAT))) throw new SafetensorsException(r.file(), null, "not a DiffQuant quantized checkpoint (metadata "
                + META_FORMAT + " = " + m.get(META_FORMAT) + ")");
        if (!VERSION.equals(m.get(META_VERSION))) throw new SafetensorsException(r.file(), null, "unsupported checkpoint version "
                + m.get(META_VERSION) + " (this build reads " + VERSION + ")");
    }

    /**
     * Loads a checkpoint into a model of the right architecture (its weights are replaced): quantized weights become
     * their dequantized values, the config's quantization is attached with the stored codes, and TFMQ's cached temporal
     * features (if the config has them) with it.
     */
    public static Loaded load(Path file, DiffusionModel model) throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            checkFormat(r);
            String src = file + " (metadata " + META_CONFIG + ")";
            String cfgText = r.metadata().get(META_CONFIG);
            String idxText = r.metadata().get(META_INDEX);
            if (cfgText == null || idxText == null) throw new SafetensorsException(file, null, "metadata '" + META_CONFIG + "' or '" + META_INDEX + "' is missing");
            QuantConfig cfg = QuantConfigCodec.parse(cfgText, src, r);
            QuantConfigs.Bound bound = QuantConfigs.bind(cfg, model, true);
            JsonView index = ConfigJson.parse(idxText, file + " (metadata " + META_INDEX + ")");
            Map<String, Tensor> sd = new LinkedHashMap<>();
            for (String n : r.names()) if (n.indexOf(':') < 0) sd.put(n, r.readFloat(n));
            Map<String, LayerParams> params = new LinkedHashMap<>(cfg.params().layers());
            for (String name : index.fieldNames()) {
                JsonView ix = index.get(name);
                if (!name.endsWith(".weight")) throw ix.error("not a weight name");
                String layer = name.substring(0, name.length() - ".weight".length());
                QuantPoint p = bound.plan().point(layer);
                if (p == null) throw ix.error("'" + layer + "' is not a quant point of this " + model.architecture());
                TensorSpec spec = bound.plan().spec(layer).weight();
                NumberFormat f = NumberFormat.parse(ix.requireString("format"));
                Granularity g = Granularity.parse(ix.requireString("granularity"));
                if (!spec.enabled() || !spec.format().equals(f) || !spec.granularity().equals(g)) throw ix.error("stored as " + f.id() + "/" + g.id()
                        + " but the embedded config specifies " + spec.describe(TensorSpec.Role.WEIGHT));
                int[] shape = ix.requireIntArray("shape");
                if (!Arrays.equals(shape, p.weightShape())) throw ix.error("shape", Arrays.toString(shape) + " but the model's weight is "
                        + Arrays.toString(p.weightShape()));
                int numel = (int) Tensor.numel(shape);
                byte[] codes = PackedCodes.wrap(r.readBytes(name + ":codes"), f.codeBits(), numel).unpack();
                QuantParams qp = weightParams(r, name);
                QuantizedTensor qt = new QuantizedTensor(f, g, Layout.WEIGHT, shape, codes, qp);
                sd.put(name, Quantizer.dequantize(qt));
                LayerParams lp = params.getOrDefault(layer, new LayerParams(null, null));
                params.put(layer, lp.withWeight(new WeightParams(qp, codes)));
            }
            model.loadStateDict(sd, file.toString());
            params.values().removeIf(LayerParams::isEmpty);
            CalibratedParams all = new CalibratedParams(params);
            QuantConfig loaded = cfg.withParams(all);
            QuantizedModel q;
            try {
                q = QuantizedModel.attach(model, bound.plan(), all);
            } catch (IllegalArgumentException e) {
                throw new JsonException(src, "$.params", e.getMessage(), e);
            }
            try {
                io.diffquant.engine.temporal.TemporalRuntime.attach(q, cfg.temporal());
            } catch (IllegalArgumentException e) {
                q.detach();
                throw new JsonException(src, "$.temporal", e.getMessage(), e);
            }
            return new Loaded(model, loaded, q);
        }
    }

    /** A stored weight's quantization parameters: its scales, zero points (asymmetric INT) and tensor scale (NVFP4). */
    private static QuantParams weightParams(SafetensorsReader r, String name) throws IOException {
        float[] scales = r.readFloat(name + ":scales").data();
        int[] zeros = r.contains(name + ":zeros") ? r.readInts(name + ":zeros") : null;
        return r.contains(name + ":tensor_scale") ? QuantParams.withTensorScale(scales, r.readFloat(name + ":tensor_scale").data()[0])
                : QuantParams.of(scales, zeros);
    }

    /**
     * Reads the quantization config without loading the model: the embedded config (activation parameters) with every
     * stored weight's parameters (scales, zero points) put back from its tensors — the config the checkpoint was
     * written from, without learned rounding codes (those are the stored codes themselves).
     */
    public static QuantConfig readConfig(Path file) throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            checkFormat(r);
            String cfgText = r.metadata().get(META_CONFIG);
            String idxText = r.metadata().get(META_INDEX);
            if (cfgText == null || idxText == null) throw new SafetensorsException(file, null, "metadata '" + META_CONFIG + "' or '" + META_INDEX + "' is missing");
            QuantConfig cfg = QuantConfigCodec.parse(cfgText, file + " (metadata " + META_CONFIG + ")", r);
            JsonView index = ConfigJson.parse(idxText, file + " (metadata " + META_INDEX + ")");
            Map<String, LayerParams> params = new LinkedHashMap<>(cfg.params().layers());
            for (String name : index.fieldNames()) {
                if (!name.endsWith(".weight")) throw index.get(name).error("not a weight name");
                String layer = name.substring(0, name.length() - ".weight".length());
                LayerParams lp = params.getOrDefault(layer, new LayerParams(null, null));
                params.put(layer, lp.withWeight(WeightParams.rtn(weightParams(r, name))));
            }
            params.values().removeIf(LayerParams::isEmpty);
            return cfg.withParams(new CalibratedParams(params));
        }
    }
}
