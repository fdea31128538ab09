package io.diffquant.kernels.tornado;

import io.diffquant.engine.model.Denoiser;
import io.diffquant.engine.model.ForwardContext;
import io.diffquant.engine.model.Layer;
import io.diffquant.engine.model.dit.DiT;
import io.diffquant.engine.model.dit.DiTConfig;
import io.diffquant.engine.quant.ActivationParams;
import io.diffquant.engine.quant.InputParams;
import io.diffquant.engine.quant.QuantizedModel;
import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.quant.spec.CalibrationMode;
import io.diffquant.engine.quant.spec.PointSpec;
import io.diffquant.engine.quant.spec.RangeSpec;
import io.diffquant.engine.quant.spec.TensorSpec;
import io.diffquant.engine.tensor.Tensor;
import io.diffquant.engine.tensor.TransformerOps;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A DiT denoiser (facebookresearch/DiT models.py) whose transformer blocks run as real low-bit kernels: the patch and
 * conditioning embeddings and the final layer run in the engine (with whatever fake-quant hooks are attached, so they match
 * the reference exactly), the blocks as {@link DitBlock}s, either with the loop kernels on the JVM ({@link Target#JVM}) or
 * as TornadoVM task graphs on the device ({@link Target#DEVICE}). The block weights come from the engine's
 * {@link QuantizedModel}: the same codes and scales its fake quantization decodes.
 *
 * <p>Buffers and device graphs are built per batch size and kept (a sampler calls with one or two batch sizes).
 * Not thread-safe.
 */
public final class TornadoDiT implements Denoiser, AutoCloseable {
    /** Where the blocks run. */
    public enum Target { JVM, DEVICE }

    private final DiT model;
    private final DiTConfig cfg;
    private final Target target;
    private final DeviceSettings settings;
    /** The packed layers of every block that runs on the kernels; null for a block that stays on the engine. */
    private final List<PackedLinear[]> layers = new ArrayList<>();
    /** Why block i stays on the engine (fake quantization on the JVM), or null. */
    private final List<String> engineReasons = new ArrayList<>();
    private int batch = -1;
    /** The kernel blocks of the current batch size, in model order (engine blocks omitted). */
    private List<DitBlock> blocks;
    private FloatArray xBuf, csBuf;
    private DevicePlan plan;

    private static final String[] NAMES = {"adaLN_modulation.1", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};

    private TornadoDiT(DiT model, Target target, DeviceSettings settings) {
        this.model = model;
        this.cfg = model.config();
        this.target = target;
        this.settings = settings;
    }

    /**
     * Packs the block layers of a model for the kernels; every block must be supported.
     * @param quantized the attached fake quantization whose codes and scales the kernels use, or null for FP32 blocks
     * @throws UnsupportedOperationException naming the layer when a block layer's quantization has no real kernel here
     */
    public static TornadoDiT create(DiT model, QuantizedModel quantized, Target target, DeviceSettings settings) {
        return create(model, quantized, target, settings, true);
    }

    /**
     * Packs the block layers of a model for the kernels.
     * @param strict true: throw for an unsupported block; false: that block runs in the engine (fake quantization on the
     *               JVM, see {@link #engineBlocks()}) and the others on the kernels
     */
    public static TornadoDiT create(DiT model, QuantizedModel quantized, Target target, DeviceSettings settings, boolean strict) {
        if (model == null) throw new IllegalArgumentException("model is null");
        if (quantized != null && quantized.model() != model) throw new IllegalArgumentException("the quantized model wraps another model instance");
        if (quantized != null && !quantized.attached()) throw new IllegalArgumentException("the quantized model is detached");
        TornadoDiT d = new TornadoDiT(model, target, settings == null ? DeviceSettings.defaults() : settings);
        for (int i = 0; i < model.depth(); i++) {
            try {
                d.layers.add(packBlock(model, quantized, i));
                d.engineReasons.add(null);
            } catch (UnsupportedOperationException e) {
                if (strict) throw e;
                d.layers.add(null);
                d.engineReasons.add(e.getMessage());
            }
        }
        return d;
    }

    /** The five Linears of block i in device form (adaLN, qkv, proj, fc1, fc2). */
    static PackedLinear[] packBlock(DiT model, QuantizedModel quantized, int i) {
        String b = "blocks." + i;
        for (String probe : new String[] {b + ".norm1", b + ".norm2", b + ".attn.q", b + ".attn.k", b + ".attn.v", b + ".attn.softmax"}) {
            Layer l = model.layers().get(probe);
            if (!l.hooks().isEmpty()) throw new UnsupportedOperationException("layer '" + probe + "' has hooks (" + l.hooks().size()
                    + "): quantized attention internals and hooked norms have no real kernel here");
        }
        PackedLinear[] p = new PackedLinear[NAMES.length];
        for (int j = 0; j < NAMES.length; j++) p[j] = pack(model, quantized, b + "." + NAMES[j]);
        return p;
    }

    /** The Linear layer names of block i that the kernels run (adaLN, qkv, proj, fc1, fc2). */
    public static List<String> blockLinears(int i) {
        List<String> out = new ArrayList<>();
        for (String n : NAMES) out.add("blocks." + i + "." + n);
        return out;
    }

    /** The device form of one Linear: FP32, or the quantized weight with its activation treatment. */
    static PackedLinear pack(DiT model, QuantizedModel q, String name) {
        Layer l = model.layers().get(name);
        Tensor w = l.param("weight"), bias = l.param("bias");
        boolean hooked = q != null && q.hookedLayers().contains(name);
        int foreign = l.hooks().size() - (hooked ? 1 : 0);
        if (foreign > 0) throw new UnsupportedOperationException("layer '" + name + "' has " + foreign
                + " hook(s) besides the quantization: only a QuantizedModel's hooks can be translated to kernels");
        if (!hooked) return PackedLinear.fp32(name, w, bias);
        PointSpec s = q.plan().spec(name);
        TensorSpec ws = s.weight(), is = s.input();
        boolean wOn = ws.enabled() && q.weightQuantization(), iOn = is.enabled() && q.inputQuantization();
        if (!wOn) {
            if (iOn) throw new UnsupportedOperationException("layer '" + name + "': input-only quantization (" + is
                    + ") has no real kernel here");
            return PackedLinear.fp32(name, w, bias);
        }
        QuantizedTensor qt = q.weightCodes(name);
        if (!iOn) return PackedLinear.quantized(name, qt, bias, PackedLinear.ActMode.NONE, null, 0f);
        if (is.mode() == CalibrationMode.DYNAMIC) {
            if (!(is.granularity() instanceof Granularity.PerToken) || is.range().kind() != RangeSpec.Kind.MINMAX)
                throw new UnsupportedOperationException("layer '" + name + "': dynamic input quantization " + is
                        + " has no real kernel here (supported: dynamic per-token min-max)");
            return PackedLinear.quantized(name, qt, bias, PackedLinear.ActMode.DYNAMIC_TOKEN, is.format(), 0f);
        }
        if (is.mode() == CalibrationMode.STATIC && is.granularity() instanceof Granularity.PerTensor) {
            InputParams ip = q.params().input(name);
            ActivationParams ap = ip.shared();
            if (ap.size() != 1 || ap.part(0).groups() != 1 || ap.part(0).hasZeroPoints() && ap.part(0).zeroPoint(0) != 0)
                throw new UnsupportedOperationException("layer '" + name + "': static input parameters " + ap.part(0)
                        + " are not one symmetric per-tensor step");
            return PackedLinear.quantized(name, qt, bias, PackedLinear.ActMode.STATIC_TENSOR, is.format(), ap.part(0).scale(0));
        }
        throw new UnsupportedOperationException("layer '" + name + "': input quantization " + is
                + " has no real kernel here (supported: dynamic per-token, static per-tensor)");
    }

    public DiT model() { return model; }
    public Target target() { return target; }

    /** The packed layers of block i (adaLN, qkv, proj, fc1, fc2); empty when the block runs in the engine. */
    public List<PackedLinear> blockLayers(int i) { return layers.get(i) == null ? List.of() : List.of(layers.get(i)); }

    /** Indices of the blocks that run in the engine (fake quantization on the JVM), each with the reason. */
    public java.util.Map<Integer, String> engineBlocks() {
        java.util.Map<Integer, String> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i < engineReasons.size(); i++) if (engineReasons.get(i) != null) m.put(i, engineReasons.get(i));
        return m;
    }

    /** Weight bytes of the kernel blocks as the kernels hold them, and the same weights in FP32. */
    public long[] weightBytes() {
        long q = 0, fp = 0;
        for (PackedLinear[] p : layers) {
            if (p == null) continue;
            for (PackedLinear l : p) {
                q += l.weightBytes();
                fp += l.fp32Bytes();
            }
        }
        return new long[] {q, fp};
    }

    private void prepare(int n) {
        if (n == batch) return;
        closePlan();
        int t = cfg.tokens(), d = cfg.hiddenSize();
        xBuf = new FloatArray(n * t * d);
        csBuf = new FloatArray(n * d);
        blocks = new ArrayList<>();
        for (int i = 0; i < layers.size(); i++) {
            PackedLinear[] p = layers.get(i);
            if (p == null) continue;
            blocks.add(new DitBlock("block" + i + "_n" + n, n, t, d, cfg.numHeads(), 1e-6f, p[0], p[1], p[2], p[3], p[4], xBuf, csBuf));
        }
        boolean allOnKernels = blocks.size() == layers.size();
        if (target == Target.DEVICE && !blocks.isEmpty()) {
            plan = new DevicePlan(blocks, allOnKernels ? settings : settings.withChained(false));
        }
        batch = n;
    }

    /** DiT.forward(x, t, y) with the blocks on the kernels. */
    @Override public Tensor forward(Tensor x, float[] t, int[] y) {
        ForwardContext ctx = model.context(x, t, y);
        Tensor h = model.embed(x, ctx);
        Tensor c = model.conditioning(ctx);
        Tensor cs = TransformerOps.silu(c);
        int n = x.dim(0);
        prepare(n);
        Host.put(cs.data(), csBuf);
        if (blocks.size() == layers.size()) {
            Host.put(h.data(), xBuf);
            if (target == Target.DEVICE) {
                plan.run();
            } else {
                for (DitBlock b : blocks) b.runJvm();
            }
            Host.get(xBuf, h.data());
            checkFinite(h, n, t);
        } else {
            int k = 0;
            for (int i = 0; i < layers.size(); i++) {
                if (layers.get(i) == null) {
                    h = model.block(i, h, c, ctx);
                    continue;
                }
                Host.put(h.data(), xBuf);
                if (target == Target.DEVICE) plan.run(k);
                else blocks.get(k).runJvm();
                k++;
                Host.get(xBuf, h.data());
                checkFinite(h, n, t);
            }
        }
        return model.head(h, c, ctx);
    }

    private void checkFinite(Tensor h, int n, float[] t) {
        if (!h.allFinite()) throw new IllegalStateException("the " + target + " kernels produced non-finite hidden states (batch "
                + n + ", t " + Arrays.toString(Arrays.copyOf(t, Math.min(4, t.length))) + ")");
    }

    private void closePlan() {
        if (plan != null) {
            plan.close();
            plan = null;
        }
    }

    @Override public void close() {
        closePlan();
        batch = -1;
    }
}
