package io.diffquant.engine.model;

import io.diffquant.engine.io.AtomicFiles;
import io.diffquant.engine.io.CheckpointException;
import io.diffquant.engine.io.DType;
import io.diffquant.engine.io.SafetensorsReader;
import io.diffquant.engine.io.SafetensorsWriter;
import io.diffquant.engine.io.TorchCheckpoint;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.model.unet.CompVisUNet;
import io.diffquant.engine.model.unet.UNet2DConfig;
import io.diffquant.engine.model.vae.AutoencoderKL;
import io.diffquant.engine.model.vae.AutoencoderKLConfig;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * Turns a public checkpoint into a model folder: the official DiT {@code .pt} files (facebookresearch/DiT
 * download.py: the EMA state_dict; training checkpoints {"model", "ema", "opt", "args"} give their "ema"), the
 * CompVis/DDIM DDPM UNet {@code .ckpt}/{@code .pth} (mapped to diffusers names by {@link CompVisUNet}), and diffusers
 * {@code .bin}/{@code .safetensors} weights of UNet2DModel or AutoencoderKL next to their config.json. The weights are
 * streamed tensor by tensor from the mapped input into {@code model.safetensors} / {@code
 * diffusion_pytorch_model.safetensors} (one tensor in the heap at a time), then checked: names and shapes against the
 * config before writing; the small models are loaded back once.
 */
public final class CheckpointImport {
    private CheckpointImport() {}

    /** What the checkpoint holds. */
    public enum Kind { DIT, COMPVIS, UNET, VAE }

    /**
     * @param input      .pt / .pth / .bin / .ckpt (torch.save zip format) or .safetensors
     * @param output     the model folder to write (created; config.json and the weights file are replaced atomically)
     * @param ditName    DiT registry name ("DiT-XL/2"), for DIT
     * @param imageSize  image size in pixels: DiT latents are imageSize / 8 (the SD VAE); the CompVis resolution
     * @param numClasses DiT classes (1000 for ImageNet)
     * @param learnSigma DiT learn_sigma (true for the official models)
     * @param select     dict key path of the state_dict inside a .pt, or null for automatic
     * @param config     the diffusers config.json for UNET and VAE (copied); for DIT an optional DiT config.json used
     *                   instead of ditName/imageSize/numClasses/learnSigma; ignored for COMPVIS
     * @param dtype      stored dtype of the output: F32, F16 or BF16
     * @param normGroups GroupNorm groups of a COMPVIS model (0 = 32, what the CompVis code hard-codes)
     */
    public record Request(Path input, Path output, Kind kind, String ditName, int imageSize, int numClasses, boolean learnSigma,
                          String select, Path config, DType dtype, int normGroups) {
        public Request {
            if (input == null || output == null || kind == null) throw new IllegalArgumentException("import: input, output and kind are required");
            if (dtype == null) dtype = DType.F32;
            if (normGroups <= 0) normGroups = 32;
        }
    }

    /** What was written. */
    public record Result(Path folder, Path weights, int tensors, long parameters, String selected, List<String> ignored,
                         List<String> notes) {}

    /** A readable source of named tensors (a mapped .pt or .safetensors). */
    private interface Source extends AutoCloseable {
        List<String> names();
        int[] shape(String name) throws IOException;
        Tensor read(String name) throws IOException;
        String selected();
        List<String> ignored();
        @Override void close();
    }

    private static Source open(Path input, String select) throws IOException {
        String n = input.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.endsWith(".safetensors")) {
            SafetensorsReader r = SafetensorsReader.open(input);
            return new Source() {
                public List<String> names() { return r.names(); }
                public int[] shape(String name) throws IOException { return r.info(name).intShape(); }
                public Tensor read(String name) throws IOException { return r.readFloat(name); }
                public String selected() { return ""; }
                public List<String> ignored() { return List.of(); }
                public void close() { r.close(); }
            };
        }
        TorchCheckpoint ck = TorchCheckpoint.open(input, select);
        return new Source() {
            public List<String> names() { return ck.names(); }
            public int[] shape(String name) throws IOException { return ck.info(name).shape(); }
            public Tensor read(String name) throws IOException { return ck.readFloat(name); }
            public String selected() { return ck.selected(); }
            public List<String> ignored() { return ck.ignored(); }
            public void close() { ck.close(); }
        };
    }

    public static Result run(Request q) throws IOException {
        try (Source src = open(q.input(), q.select())) {
            List<String> notes = new ArrayList<>();
            return switch (q.kind()) {
                case DIT -> dit(q, src, notes);
                case COMPVIS -> compVis(q, src, notes);
                case UNET -> diffusers(q, src, notes, false);
                case VAE -> diffusers(q, src, notes, true);
            };
        }
    }

    private static Result dit(Request q, Source src, List<String> notes) throws IOException {
        DiTConfig cfg;
        if (q.config() != null) {
            cfg = DiTConfig.fromJson(q.config());
        } else {
            if (q.ditName() == null) throw new IllegalArgumentException("import --kind dit needs the model name (e.g. DiT-XL/2) or a DiT config.json");
            if (q.imageSize() <= 0 || q.imageSize() % 8 != 0) throw new IllegalArgumentException("import --kind dit: image size "
                    + q.imageSize() + " must be a positive multiple of 8 (the SD VAE downsamples by 8)");
            cfg = DiTConfig.named(q.ditName(), q.imageSize() / 8, q.numClasses(), q.learnSigma());
        }
        Map<String, int[]> layout = DiT.stateDictLayout(cfg);
        Map<String, String> from = new LinkedHashMap<>();
        for (String k : src.names()) from.put(k, k);
        Map<String, Tensor> fixed = new LinkedHashMap<>();
        if (!src.names().contains("pos_embed")) {
            fixed.put("pos_embed", TransformerOps.sincosPosEmbed2d(cfg.hiddenSize(), cfg.gridSize()));
            notes.add("pos_embed was not in the checkpoint: wrote DiT's fixed 2-D sin-cos table");
        }
        checkNames(q.input(), src, layout, from, fixed.keySet(), "the " + (q.config() != null ? q.config().toString() : q.ditName()) + " config (input " + cfg.inputSize()
                + ", " + cfg.numClasses() + " classes, learn_sigma " + cfg.learnSigma() + ")");
        Path wf = q.output().resolve(ModelFolder.DIT_WEIGHTS);
        write(q, src, layout, from, fixed, wf);
        AtomicFiles.writeString(q.output().resolve(ModelFolder.CONFIG), cfg.toJson());
        return new Result(q.output(), wf, layout.size(), count(layout), src.selected(), src.ignored(), notes);
    }

    private static Result compVis(Request q, Source src, List<String> notes) throws IOException {
        Map<String, int[]> shapes = new LinkedHashMap<>();
        for (String n : src.names()) shapes.put(n, src.shape(n));
        if (!CompVisUNet.isCompVis(shapes.keySet())) throw new CheckpointException(q.input(), null, "does not look like a CompVis/DDIM "
                + "UNet (no temb.dense.0 / conv_in tensors); names start with " + head(src.names()));
        int res = q.imageSize() > 0 ? q.imageSize() : 32;
        UNet2DConfig cfg = CompVisUNet.inferConfig(shapes, res, q.normGroups());
        int levels = CompVisUNet.levels(shapes.keySet());
        Map<String, int[]> layout = new LinkedHashMap<>();
        for (var e : new UNet2DModelLayout(cfg).shapes().entrySet()) layout.put(e.getKey(), e.getValue());
        Map<String, String> from = new LinkedHashMap<>();
        for (String n : src.names()) from.put(CompVisUNet.toDiffusers(n, levels), n);
        checkNames(q.input(), src, layout, from, List.of(), "the CompVis UNet config inferred from it " + cfg.blockOutChannels());
        notes.add("CompVis names mapped to diffusers UNet2DModel names (block_out_channels " + cfg.blockOutChannels()
                + ", attention in " + cfg.downBlockTypes() + ", resolution " + res + ")");
        Path wf = q.output().resolve(ModelFolder.UNET_WEIGHTS);
        write(q, src, layout, from, Map.of(), wf);
        AtomicFiles.writeString(q.output().resolve(ModelFolder.CONFIG), cfg.toJson());
        ModelFolder.load(q.output());       // loads back (35.7M parameters for CIFAR-10): a last strict check
        return new Result(q.output(), wf, layout.size(), count(layout), src.selected(), src.ignored(), notes);
    }

    private static Result diffusers(Request q, Source src, List<String> notes, boolean vae) throws IOException {
        if (q.config() == null || !Files.isRegularFile(q.config())) throw new IllegalArgumentException("import --kind "
                + (vae ? "vae" : "unet") + " needs --config: the diffusers config.json that came with the weights (" + q.config() + ")");
        Map<String, Tensor> live = vae ? new AutoencoderKL(AutoencoderKLConfig.fromJson(q.config())).stateDict()
                : new io.diffquant.engine.model.unet.UNet2DModel(UNet2DConfig.fromJson(q.config())).stateDict();
        Map<String, int[]> layout = new LinkedHashMap<>();
        live.forEach((k, v) -> layout.put(k, v.shape()));
        Map<String, String> from = new LinkedHashMap<>();
        for (String n : src.names()) from.put(renameLegacyAttention(n), n);
        checkNames(q.input(), src, layout, from, List.of(), "the config " + q.config());
        Path wf = q.output().resolve(vae ? AutoencoderKL.WEIGHTS : ModelFolder.UNET_WEIGHTS);
        write(q, src, layout, from, Map.of(), wf);
        Files.copy(q.config(), q.output().resolve(ModelFolder.CONFIG), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        if (vae) AutoencoderKL.load(q.output());
        else ModelFolder.load(q.output());
        return new Result(q.output(), wf, layout.size(), count(layout), src.selected(), src.ignored(), notes);
    }

    /** diffusers' deprecated attention names (query/key/value/proj_attn under .attentions.N) -> to_q/to_k/to_v/to_out.0. */
    static String renameLegacyAttention(String k) {
        int a = k.lastIndexOf(".attentions.");
        if (a < 0) return k;
        int dot = k.indexOf('.', a + 12);
        if (dot < 0) return k;
        String rest = k.substring(dot + 1);
        for (String[] r : new String[][] {{"query", "to_q"}, {"key", "to_k"}, {"value", "to_v"}, {"proj_attn", "to_out.0"}})
            if (rest.equals(r[0] + ".weight") || rest.equals(r[0] + ".bias"))
                return k.substring(0, dot + 1) + r[1] + rest.substring(r[0].length());
        return k;
    }

    /** Every layout name must come from the source (or be supplied), with the same number of elements and compatible shape. */
    private static void checkNames(Path file, Source src, Map<String, int[]> layout, Map<String, String> from,
                                   java.util.Collection<String> supplied, String what) throws IOException {
        List<String> missing = new ArrayList<>();
        for (String k : layout.keySet()) if (!from.containsKey(k) && !supplied.contains(k)) missing.add(k);
        TreeSet<String> unexpected = new TreeSet<>();
        for (var e : from.entrySet()) if (!layout.containsKey(e.getKey())) unexpected.add(e.getValue());
        if (!missing.isEmpty() || !unexpected.isEmpty()) throw new CheckpointException(file, null, "the state_dict"
                + (src.selected().isEmpty() ? "" : " '" + src.selected() + "'") + " does not match " + what
                + (missing.isEmpty() ? "" : "; missing " + missing.size() + " tensors " + head(missing))
                + (unexpected.isEmpty() ? "" : "; unexpected " + unexpected.size() + " tensors " + head(new ArrayList<>(unexpected))));
        for (var e : layout.entrySet()) {
            String s = from.get(e.getKey());
            if (s == null) continue;
            int[] have = src.shape(s), want = e.getValue();
            if (!Arrays.equals(have, want) && !(Tensor.numel(have) == Tensor.numel(want) && squeeze(have).equals(squeeze(want))))
                throw new CheckpointException(file, s, "has shape " + Arrays.toString(have) + ", " + what + " needs "
                        + Arrays.toString(want) + " for '" + e.getKey() + "'");
        }
    }

    private static List<Integer> squeeze(int[] s) {
        List<Integer> r = new ArrayList<>();
        for (int d : s) r.add(d);
        while (!r.isEmpty() && r.getLast() == 1) r.removeLast();
        return r;
    }

    private static void write(Request q, Source src, Map<String, int[]> layout, Map<String, String> from,
                              Map<String, Tensor> fixed, Path wf) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt")
                .metadata("source", q.input().getFileName().toString())
                .metadata("converted_by", "diffquant import --kind " + q.kind().name().toLowerCase(Locale.ROOT));
        if (!src.selected().isEmpty()) w.metadata("selected", src.selected());
        Files.createDirectories(q.output());   // only once the names and shapes passed
        for (var e : layout.entrySet()) {
            String name = e.getKey();
            int[] shape = e.getValue();
            Tensor f = fixed.get(name);
            String s = from.get(name);
            w.addDeferred(name, q.dtype(), shape, () -> {
                Tensor t = f != null ? f : src.read(s);
                if (!t.allFinite()) throw new CheckpointException(q.input(), s, "contains NaN or infinite values");
                return Arrays.equals(t.shape(), shape) ? t : t.reshape(shape);
            });
        }
        w.write(wf);
    }

    private static long count(Map<String, int[]> layout) {
        long n = 0;
        for (int[] s : layout.values()) n += Tensor.numel(s);
        return n;
    }

    private static String head(List<String> names) {
        return names.size() <= 6 ? names.toString() : names.subList(0, 6) + " ...";
    }

    /** The UNet2DModel state_dict layout of a config (built once: the UNets are small). */
    private record UNet2DModelLayout(UNet2DConfig cfg) {
        Map<String, int[]> shapes() {
            Map<String, int[]> m = new LinkedHashMap<>();
            new io.diffquant.engine.model.unet.UNet2DModel(cfg).stateDict().forEach((k, v) -> m.put(k, v.shape()));
            return m;
        }
    }
}
