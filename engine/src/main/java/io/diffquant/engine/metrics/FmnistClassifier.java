package io.diffquant.engine.metrics;

import io.diffquant.engine.io.Json;
import io.diffquant.engine.io.JsonView;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.tensor.ConvOps;
import io.diffquant.engine.tensor.Ops;
import io.diffquant.engine.tensor.Tape;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.train.TrainRng;

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
 * The product's Fashion-MNIST feature network (a small VGG-style CNN, Simonyan and Zisserman 2015), playing the role
 * Inception-v3 plays for FID (Heusel et al. 2017), sFID (Nash et al. 2021) and IS (Salimans et al. 2016) on natural
 * images; see assets/fmnist-classifier/MODEL_CARD.md.
 *
 * <pre>
 * x [N, 1, 28, 28] in [-1, 1]
 * conv1 3x3 (1 -> w1, pad 1) ReLU, conv2 3x3 (w1 -> w1, pad 1) ReLU, maxpool 2x2      -> [N, w1, 14, 14]
 * conv3 3x3 (w1 -> w2, pad 1) ReLU, conv4 3x3 (w2 -> w2, pad 1) ReLU, maxpool 2x2     -> [N, w2, 7, 7]
 *     spatial features (sFID): the first s channels of this map, flattened             -> [N, s·49]
 * zero-pad bottom/right to 8x8, maxpool 2x2 (= ceil-mode max pooling of the ReLU map)  -> [N, w2, 4, 4]
 * flatten, fc1 (16·w2 -> hidden)                                                       -> [N, hidden]
 *     penultimate features (FID): fc1's output BEFORE its ReLU
 * ReLU, fc2 (hidden -> classes)                                                        -> logits [N, classes]
 * </pre>
 *
 * The sFID features follow the guided-diffusion evaluator, which takes the first 7 channels of Inception's
 * intermediate 17x17 mixed_6/conv map: a fixed channel subset of an intermediate spatial map keeps the spatial layout
 * and a covariance small enough to estimate (392 dimensions by default). The FID features are taken before the ReLU
 * so that no unit is clipped to a constant.
 *
 * <p>A model folder holds {@value #CONFIG} ({@code "_class_name": "FmnistClassifier"} and the widths) and
 * {@value #WEIGHTS} (F32, the PyTorch names {@code conv1.weight, conv1.bias, ..., fc2.bias}). Inference
 * ({@link #features}) runs in batches without a tape; {@link #logits} records its ops for training.
 */
public final class FmnistClassifier {
    public static final String CLASS_NAME = "FmnistClassifier";
    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    public static final int IMAGE_SIZE = 28;
    /** Side of the map the spatial features come from (28 / 2 / 2). */
    public static final int SPATIAL_SIDE = 7;
    /** Images per forward batch in {@link #features}. */
    public static final int DEFAULT_BATCH = 250;

    /** Names of the parameters, in module order. */
    public static final List<String> PARAMETER_NAMES = List.of("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
            "conv3.weight", "conv3.bias", "conv4.weight", "conv4.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias");

    /**
     * Architecture hyper-parameters.
     *
     * @param width1          channels of conv1 and conv2
     * @param width2          channels of conv3 and conv4
     * @param hidden          width of fc1 (dimension of the FID features)
     * @param numClasses      classes (fc2 outputs)
     * @param spatialChannels channels of the 7x7 map kept as sFID features (1..width2)
     */
    public record Config(int width1, int width2, int hidden, int numClasses, int spatialChannels) {
        public Config {
            if (width1 < 1 || width2 < 1 || hidden < 1) throw new IllegalArgumentException(
                    "classifier config: widths must be >= 1, got width1 " + width1 + ", width2 " + width2 + ", hidden " + hidden);
            if (numClasses < 2) throw new IllegalArgumentException("classifier config: num_classes must be >= 2, got " + numClasses);
            if (spatialChannels < 1 || spatialChannels > width2) throw new IllegalArgumentException(
                    "classifier config: spatial_channels must be in 1.." + width2 + ", got " + spatialChannels);
        }

        /** The shipped architecture: 32, 64, 128 hidden, 10 classes, 8 spatial channels (392-d sFID features). */
        public static Config defaults() { return new Config(32, 64, 128, 10, 8); }

        /** Inputs of fc1: width2 · 4 · 4. */
        public int flatDim() { return width2 * 16; }

        /** Dimension of the FID features. */
        public int featureDim() { return hidden; }

        /** Dimension of the sFID features: spatialChannels · 7 · 7. */
        public int spatialDim() { return spatialChannels * SPATIAL_SIDE * SPATIAL_SIDE; }

        /** The shape of each parameter. */
        public Map<String, int[]> parameterShapes() {
            Map<String, int[]> m = new LinkedHashMap<>();
            m.put("conv1.weight", new int[] {width1, 1, 3, 3});
            m.put("conv1.bias", new int[] {width1});
            m.put("conv2.weight", new int[] {width1, width1, 3, 3});
            m.put("conv2.bias", new int[] {width1});
            m.put("conv3.weight", new int[] {width2, width1, 3, 3});
            m.put("conv3.bias", new int[] {width2});
            m.put("conv4.weight", new int[] {width2, width2, 3, 3});
            m.put("conv4.bias", new int[] {width2});
            m.put("fc1.weight", new int[] {hidden, flatDim()});
            m.put("fc1.bias", new int[] {hidden});
            m.put("fc2.weight", new int[] {numClasses, hidden});
            m.put("fc2.bias", new int[] {numClasses});
            return m;
        }

        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("_class_name", CLASS_NAME);
            m.put("image_size", IMAGE_SIZE);
            m.put("in_channels", 1);
            m.put("width1", width1);
            m.put("width2", width2);
            m.put("hidden", hidden);
            m.put("num_classes", numClasses);
            m.put("spatial_channels", spatialChannels);
            m.put("input_range", List.of(-1, 1));
            return m;
        }

        /** Reads a config.json written by {@link #toJson()}; errors name the file and field. */
        public static Config fromJson(Path file) throws IOException {
            JsonView v = Json.read(file);
            String cls = v.optString("_class_name", null);
            if (!CLASS_NAME.equals(cls)) throw v.error("_class_name", "expected \"" + CLASS_NAME + "\", got "
                    + (cls == null ? "nothing" : "\"" + cls + "\""));
            if (v.has("image_size") && v.requireInt("image_size") != IMAGE_SIZE)
                throw v.error("image_size", "must be " + IMAGE_SIZE);
            if (v.has("in_channels") && v.requireInt("in_channels") != 1) throw v.error("in_channels", "must be 1");
            try {
                return new Config(v.requireInt("width1"), v.requireInt("width2"), v.requireInt("hidden"),
                        v.requireInt("num_classes"), v.requireInt("spatial_channels"));
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": " + e.getMessage(), e);
            }
        }
    }

    /**
     * What one pass gives per image.
     *
     * @param penultimate FID features [N, hidden] (fc1 before its ReLU)
     * @param spatial     sFID features [N, spatialChannels · 49]
     * @param logits      class logits [N, numClasses]
     */
    public record Features(Tensor penultimate, Tensor spatial, Tensor logits) {
        public int size() { return logits.dim(0); }

        /** argmax of each row of the logits (the first maximum on ties). */
        public int[] predictions() {
            int n = logits.dim(0), k = logits.dim(1);
            float[] z = logits.data();
            int[] out = new int[n];
            for (int i = 0; i < n; i++) {
                int best = 0;
                for (int j = 1; j < k; j++) if (z[i * k + j] > z[i * k + best]) best = j;
                out[i] = best;
            }
            return out;
        }

        /** Fraction of {@link #predictions()} equal to {@code labels}. */
        public double accuracy(int[] labels) {
            if (labels.length != size()) throw new IllegalArgumentException(
                    "classifier accuracy: " + labels.length + " labels for " + size() + " images");
            int[] p = predictions();
            int ok = 0;
            for (int i = 0; i < p.length; i++) if (p[i] == labels[i]) ok++;
            return p.length == 0 ? Double.NaN : ok / (double) p.length;
        }
    }

    private final Config config;
    private final Map<String, Tensor> params;

    private FmnistClassifier(Config config, Map<String, Tensor> params) {
        this.config = config;
        this.params = Collections.unmodifiableMap(params);
    }

    /**
     * A freshly initialised classifier: weights ~ N(0, 2 / fan_in) (He et al. 2015, for ReLU), except fc2 with
     * N(0, 1 / fan_in); biases zero. Deterministic in {@code seed}.
     */
    public static FmnistClassifier create(Config config, long seed) {
        Map<String, Tensor> p = new LinkedHashMap<>();
        long k = 0;
        for (Map.Entry<String, int[]> e : config.parameterShapes().entrySet()) {
            Tensor t = Tensor.zeros(e.getValue());
            if (e.getKey().endsWith(".weight")) {
                int fanIn = t.size() / t.dim(0);
                double std = Math.sqrt((e.getKey().startsWith("fc2") ? 1.0 : 2.0) / fanIn);
                TrainRng rng = TrainRng.derive(seed, 0x494E4954L /* "INIT" */, k);
                float[] d = t.data();
                rng.gaussian(d);
                for (int i = 0; i < d.length; i++) d[i] *= (float) std;
            }
            p.put(e.getKey(), t);
            k++;
        }
        return new FmnistClassifier(config, p);
    }

    /**
     * A classifier from tensors by name; strict: every parameter must be there with its exact shape, nothing else.
     *
     * @param source where the tensors come from, for error messages (e.g. the file)
     */
    public static FmnistClassifier fromTensors(Config config, Map<String, Tensor> tensors, String source) {
        Map<String, int[]> shapes = config.parameterShapes();
        List<String> unexpected = new ArrayList<>();
        for (String n : tensors.keySet()) if (!shapes.containsKey(n)) unexpected.add(n);
        if (!unexpected.isEmpty()) throw new IllegalArgumentException(source + ": unexpected tensors " + unexpected
                + " for a " + CLASS_NAME + " (expected " + PARAMETER_NAMES + ")");
        Map<String, Tensor> p = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            Tensor t = tensors.get(e.getKey());
            if (t == null) throw new IllegalArgumentException(source + ": tensor '" + e.getKey() + "' is missing");
            if (!Arrays.equals(t.shape(), e.getValue())) throw new IllegalArgumentException(source + ": tensor '" + e.getKey()
                    + "' has shape " + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(e.getValue()));
            if (!t.allFinite()) throw new IllegalArgumentException(source + ": tensor '" + e.getKey() + "' has non-finite values");
            p.put(e.getKey(), Tensor.of(t.data().clone(), t.shape()));
        }
        return new FmnistClassifier(config, p);
    }

    /** Loads {@value #CONFIG} and {@value #WEIGHTS} from a model folder; errors name the file (and tensor). */
    public static FmnistClassifier load(Path folder) throws IOException {
        Path cfg = folder.resolve(CONFIG), wf = folder.resolve(WEIGHTS);
        if (!Files.isRegularFile(cfg)) throw new NoSuchFileException(cfg.toString(), null,
                "not a classifier folder: no " + CONFIG + " (train one with 'diffquant train-classifier')");
        if (!Files.isRegularFile(wf)) throw new NoSuchFileException(wf.toString(), null, "classifier weights missing");
        Config c = Config.fromJson(cfg);
        try (SafetensorsReader r = SafetensorsReader.open(wf)) {
            try {
                return fromTensors(c, r.readAllFloat(), wf.toString());
            } catch (IllegalArgumentException e) {
                throw new IOException(e.getMessage(), e);
            }
        }
    }

    /** Writes {@value #CONFIG} and {@value #WEIGHTS} (F32) atomically into {@code folder}. */
    public void save(Path folder, Map<String, String> metadata) throws IOException {
        Files.createDirectories(folder);
        SafetensorsWriter w = new SafetensorsWriter();
        if (metadata != null) metadata.forEach(w::metadata);
        for (Map.Entry<String, Tensor> e : params.entrySet()) w.add(e.getKey(), e.getValue());
        w.write(folder.resolve(WEIGHTS));
        Json.write(folder.resolve(CONFIG), config.toJson());
    }

    public Config config() { return config; }

    /** The parameters by name (the live tensors: a trainer updates them in place). */
    public Map<String, Tensor> parameters() { return params; }

    public long parameterCount() {
        long n = 0;
        for (Tensor t : params.values()) n += t.size();
        return n;
    }

    private Tensor p(String name) { return params.get(name); }

    /** Checks that images are [N, 1, 28, 28]. */
    public static void requireImages(String what, Tensor images) {
        if (images == null) throw new IllegalArgumentException(what + ": images are null");
        int[] s = images.shape();
        if (s.length != 4 || s[1] != 1 || s[2] != IMAGE_SIZE || s[3] != IMAGE_SIZE) throw new IllegalArgumentException(what
                + ": expected Fashion-MNIST images [N, 1, " + IMAGE_SIZE + ", " + IMAGE_SIZE + "] in [-1, 1], got " + Arrays.toString(s));
    }

    /** The 7x7 map after block 2 (recorded on an active tape). */
    private Tensor trunk(Tensor x) {
        Tensor h = Ops.relu(ConvOps.conv2d(x, p("conv1.weight"), p("conv1.bias"), 1, 1));
        h = Ops.relu(ConvOps.conv2d(h, p("conv2.weight"), p("conv2.bias"), 1, 1));
        h = Ops.maxPool2x(h);
        h = Ops.relu(ConvOps.conv2d(h, p("conv3.weight"), p("conv3.bias"), 1, 1));
        h = Ops.relu(ConvOps.conv2d(h, p("conv4.weight"), p("conv4.bias"), 1, 1));
        return Ops.maxPool2x(h);
    }

    /** fc1 pre-activation from the 7x7 map. */
    private Tensor penultimate(Tensor map) {
        Tensor pooled = Ops.maxPool2x(ConvOps.pad(map, 0, 1, 0, 1));
        return Ops.linear(pooled.reshape(pooled.dim(0), config.flatDim()), p("fc1.weight"), p("fc1.bias"));
    }

    private Tensor head(Tensor penultimate) {
        return Ops.linear(Ops.relu(penultimate), p("fc2.weight"), p("fc2.bias"));
    }

    /** Logits [N, numClasses] of one batch, built from recorded ops (the training path). */
    public Tensor logits(Tensor images) {
        requireImages("classifier input", images);
        return head(penultimate(trunk(images)));
    }

    /** {@link #features(Tensor, int)} in batches of {@value #DEFAULT_BATCH}. */
    public Features features(Tensor images) { return features(images, DEFAULT_BATCH); }

    /**
     * Features and logits of every image, computed in batches of {@code batch} without recording (an active tape is
     * paused). The result does not depend on {@code batch} beyond GEMM summation order.
     */
    public Features features(Tensor images, int batch) {
        requireImages("classifier input", images);
        if (batch < 1) throw new IllegalArgumentException("classifier batch must be >= 1, got " + batch);
        int n = images.dim(0), s = config.spatialChannels(), side2 = SPATIAL_SIDE * SPATIAL_SIDE;
        Tensor pen = Tensor.zeros(n, config.featureDim());
        Tensor spa = Tensor.zeros(n, config.spatialDim());
        Tensor log = Tensor.zeros(n, config.numClasses());
        int w2 = config.width2();
        try (var ignored = Tape.pause()) {
            for (int from = 0; from < n; from += batch) {
                int to = Math.min(n, from + batch), b = to - from;
                Tensor map = trunk(images.sliceRows(from, to));
                float[] md = map.data(), sd = spa.data();
                for (int i = 0; i < b; i++)
                    System.arraycopy(md, i * w2 * side2, sd, (from + i) * s * side2, s * side2);
                Tensor f = penultimate(map);
                System.arraycopy(f.data(), 0, pen.data(), from * config.featureDim(), f.size());
                Tensor z = head(f);
                System.arraycopy(z.data(), 0, log.data(), from * config.numClasses(), z.size());
            }
        }
        return new Features(pen, spa, log);
    }

    @Override public String toString() {
        return CLASS_NAME + "[" + config + ", " + parameterCount() + " parameters]";
    }
}
