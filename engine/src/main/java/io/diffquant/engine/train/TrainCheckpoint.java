package io.diffquant.engine.train;

import com.fasterxml.jackson.core.type.TypeReference;
import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything needed to continue a {@link TrainingRun} bit for bit, in one safetensors file written atomically:
 * tensors {@code param/<name>}, {@code adam_m/<name>}, {@code adam_v/<name>}, {@code ema/<name>} (float32) and
 * the scalar state in the header's {@code __metadata__} (step, seed, batch size, data position, per-parameter Adam
 * step counts, EMA update count, elapsed time, caller entries under {@code extra.}). The random state is the pair
 * (seed, step): every draw of step s comes from a stream derived from them ({@link TrainRng#derive}).
 */
public record TrainCheckpoint(long step, long seed, int batchSize, long dataEpoch, int dataCursor,
                              Map<String, Tensor> params, Map<String, Tensor> adamM, Map<String, Tensor> adamV,
                              Map<String, Long> adamSteps, Map<String, Tensor> ema, long emaUpdates,
                              double elapsedSeconds, long imagesSeen, Map<String, String> extra) {
    public static final String FORMAT = "diffquant-train-checkpoint";
    public static final String VERSION = "1";

    public TrainCheckpoint {
        params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        adamM = Collections.unmodifiableMap(new LinkedHashMap<>(adamM));
        adamV = Collections.unmodifiableMap(new LinkedHashMap<>(adamV));
        adamSteps = Collections.unmodifiableMap(new LinkedHashMap<>(adamSteps));
        ema = ema == null ? null : Collections.unmodifiableMap(new LinkedHashMap<>(ema));
        extra = Collections.unmodifiableMap(new LinkedHashMap<>(extra));
    }

    /** Writes the checkpoint atomically (temporary file + rename); an existing file is replaced. */
    public void write(Path file) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter();
        w.metadata("format", FORMAT).metadata("version", VERSION)
                .metadata("step", Long.toString(step)).metadata("seed", Long.toString(seed))
                .metadata("batch_size", Integer.toString(batchSize))
                .metadata("data_epoch", Long.toString(dataEpoch)).metadata("data_cursor", Integer.toString(dataCursor))
                .metadata("adam_steps", Json.mapper().writeValueAsString(adamSteps))
                .metadata("has_ema", Boolean.toString(ema != null)).metadata("ema_updates", Long.toString(emaUpdates))
                .metadata("elapsed_seconds", Double.toString(elapsedSeconds)).metadata("images_seen", Long.toString(imagesSeen));
        for (var e : extra.entrySet()) w.metadata("extra." + e.getKey(), e.getValue());
        for (var e : params.entrySet()) w.add("param/" + e.getKey(), e.getValue());
        for (var e : adamM.entrySet()) w.add("adam_m/" + e.getKey(), e.getValue());
        for (var e : adamV.entrySet()) w.add("adam_v/" + e.getKey(), e.getValue());
        if (ema != null) for (var e : ema.entrySet()) w.add("ema/" + e.getKey(), e.getValue());
        w.write(file);
    }

    /** Reads a checkpoint; a file that is not one (or is damaged) gives an IOException naming the file and the field. */
    public static TrainCheckpoint read(Path file) throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            Map<String, String> md = r.metadata();
            if (!FORMAT.equals(md.get("format"))) throw new IOException(file + ": not a DiffQuant training checkpoint "
                    + "(metadata 'format' is " + md.get("format") + ", expected " + FORMAT + ")");
            if (!VERSION.equals(md.get("version"))) throw new IOException(file + ": training checkpoint version "
                    + md.get("version") + " is not supported (expected " + VERSION + ")");
            Map<String, Tensor> params = new LinkedHashMap<>(), m = new LinkedHashMap<>(), v = new LinkedHashMap<>(), ema = new LinkedHashMap<>();
            for (String name : r.names()) {
                int slash = name.indexOf('/');
                String kind = slash < 0 ? "" : name.substring(0, slash), local = name.substring(slash + 1);
                Map<String, Tensor> dst = switch (kind) {
                    case "param" -> params;
                    case "adam_m" -> m;
                    case "adam_v" -> v;
                    case "ema" -> ema;
                    default -> throw new IOException(file + ": unexpected tensor '" + name + "' in a training checkpoint");
                };
                dst.put(local, r.readFloat(name));
            }
            Map<String, Long> adamSteps;
            try {
                adamSteps = Json.mapper().readValue(need(md, "adam_steps", file), new TypeReference<LinkedHashMap<String, Long>>() {});
            } catch (IOException e) {
                throw new IOException(file + ": metadata 'adam_steps' is not a JSON object of step counts: " + e.getMessage(), e);
            }
            Map<String, String> extra = new LinkedHashMap<>();
            for (var e : md.entrySet()) if (e.getKey().startsWith("extra.")) extra.put(e.getKey().substring(6), e.getValue());
            boolean hasEma = Boolean.parseBoolean(need(md, "has_ema", file));
            return new TrainCheckpoint(longOf(md, "step", file), longOf(md, "seed", file), (int) longOf(md, "batch_size", file),
                    longOf(md, "data_epoch", file), (int) longOf(md, "data_cursor", file), params, m, v, adamSteps,
                    hasEma ? ema : null, longOf(md, "ema_updates", file), doubleOf(md, "elapsed_seconds", file),
                    longOf(md, "images_seen", file), extra);
        }
    }

    private static String need(Map<String, String> md, String key, Path file) throws IOException {
        String s = md.get(key);
        if (s == null) throw new IOException(file + ": training checkpoint metadata lacks '" + key + "'");
        return s;
    }

    private static long longOf(Map<String, String> md, String key, Path file) throws IOException {
        String s = need(md, key, file);
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new IOException(file + ": training checkpoint metadata '" + key + "' = '" + s + "' is not an integer");
        }
    }

    private static double doubleOf(Map<String, String> md, String key, Path file) throws IOException {
        String s = need(md, key, file);
        try {
            return Double.parseDouble(s);
        } catch (NumberFormatException e) {
            throw new IOException(file + ": training checkpoint metadata '" + key + "' = '" + s + "' is not a number");
        }
    }
}
