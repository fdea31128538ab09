package io.diffquant.kernels.tornado;

import io.diffquant.engine.quant.export.CodeTables;
import io.diffquant.engine.quant.format.BlockFormat;
import io.diffquant.engine.quant.format.FpFormat;
import io.diffquant.engine.quant.format.GroupView;
import io.diffquant.engine.quant.format.IntFormat;
import io.diffquant.engine.quant.format.NumberFormat;
import io.diffquant.engine.quant.format.PackedCodes;
import io.diffquant.engine.quant.format.QuantParams;
import io.diffquant.engine.quant.format.QuantizedTensor;
import io.diffquant.engine.tensor.Tensor;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;

import java.util.Arrays;

/**
 * A Linear layer (or a convolution's flattened weight [out, in*kh*kw]) in the device form the kernels read: FP32
 * weights, integer codes with per-group steps and zero points (W8 stores any integer width up to 8 bits as one level per
 * byte, W4 packs two codes per byte), or 4-bit float codes with a 16-entry table and per-group multipliers (FP4DiT E2M1
 * and other ExMy formats up to 4 bits, OCP MXFP4, NVFP4). Built from the engine's quantized weights (QuantizedTensor:
 * the same codes and scales fake quantization decodes, docs/export-format.md), so the real low-bit GEMM and the fake-quant
 * forward share every number. Immutable after construction; the arrays are device-resident in a task graph.
 */
public final class PackedLinear {
    /** What the GEMM does. */
    public enum Kind {
        /** FP32 weights and activations (the reference path). */
        F32,
        /** integer weights of up to 8 bits, one level per byte, integer activations. */
        W8A8,
        /** 4-bit integer weights packed two per byte, integer activations. */
        W4A8,
        /** 4-bit float weight codes through a lookup table, FP32 activations. */
        FP4_LUT
    }

    /** How the integer GEMMs get their activation codes. */
    public enum ActMode {
        /** no activation quantization (F32, FP4_LUT). */
        NONE,
        /** symmetric integers with one scale per token computed from every input (min-max). */
        DYNAMIC_TOKEN,
        /** symmetric integers with one calibrated scale for the whole tensor. */
        STATIC_TENSOR
    }

    private final String name;
    private final Kind kind;
    private final int in, out, group;
    private final boolean asym;
    private final ActMode act;
    private final int actQmin, actQmax;
    private final float actScale;
    /** F32 weights or dummy. */
    final FloatArray wf;
    /** integer / packed codes or dummy. */
    final Int8Array wq;
    /** per-group steps (INT) or multipliers (FP4), [out, groupsPerRow]; dummy for F32. */
    final FloatArray ws;
    /** per-group zero points (unsigned bytes), or dummy. */
    final Int8Array wz;
    /** FP4 value table (16 entries), or dummy. */
    final FloatArray lut;
    final FloatArray bias;
    private final long weightBytes;

    private PackedLinear(String name, Kind kind, int in, int out, int group, boolean asym, ActMode act, int actQmin, int actQmax,
                         float actScale, FloatArray wf, Int8Array wq, FloatArray ws, Int8Array wz, FloatArray lut, FloatArray bias,
                         long weightBytes) {
        this.name = name;
        this.kind = kind;
        this.in = in;
        this.out = out;
        this.group = group;
        this.asym = asym;
        this.act = act;
        this.actQmin = actQmin;
        this.actQmax = actQmax;
        this.actScale = actScale;
        this.wf = wf;
        this.wq = wq;
        this.ws = ws;
        this.wz = wz;
        this.lut = lut;
        this.bias = bias;
        this.weightBytes = weightBytes;
    }

    public String name() { return name; }
    public Kind kind() { return kind; }
    public int in() { return in; }
    public int out() { return out; }
    /** Input channels per parameter group (in for per-channel / per-tensor). */
    public int group() { return group; }
    public int groupsPerRow() { return (in + group - 1) / group; }
    public boolean asymmetric() { return asym; }
    public ActMode activationMode() { return act; }
    /** Largest activation level (127 for INT8). */
    public int activationQmax() { return actQmax; }
    public int activationQmin() { return actQmin; }
    /** The calibrated activation step of {@link ActMode#STATIC_TENSOR}, else 0. */
    public float activationScale() { return actScale; }
    /** Bytes of the weight as the device holds it: codes + scales + zero points + table (FP32: 4 per weight). */
    public long weightBytes() { return weightBytes; }
    /** Bytes of the same weight in FP32. */
    public long fp32Bytes() { return 4L * in * out; }

    private static FloatArray dummyF() { return new FloatArray(1); }
    private static Int8Array dummyB() { return new Int8Array(1); }

    private static FloatArray biasArray(String name, Tensor bias, int out) {
        FloatArray b = new FloatArray(out);
        if (bias != null) {
            if (bias.size() != out) throw new IllegalArgumentException("layer '" + name + "': bias has " + bias.size()
                    + " values, expected " + out);
            float[] d = bias.data();
            for (int i = 0; i < out; i++) b.set(i, d[i]);
        }
        return b;
    }

    private static int[] matrix(String name, int[] shape) {
        if (shape.length < 2) throw new IllegalArgumentException("layer '" + name + "': weight must be [out, in, ...], got "
                + Arrays.toString(shape));
        long cols = 1;
        for (int i = 1; i < shape.length; i++) cols *= shape[i];
        if (cols > Integer.MAX_VALUE / 2 || (long) shape[0] * cols > Integer.MAX_VALUE / 2) throw new IllegalArgumentException(
                "layer '" + name + "': weight " + Arrays.toString(shape) + " is too large for 32-bit kernel indices");
        return new int[] {shape[0], (int) cols};
    }

    /** FP32 layer: y = x W^T + b. */
    public static PackedLinear fp32(String name, Tensor weight, Tensor bias) {
        int[] m = matrix(name, weight.shape());
        int out = m[0], in = m[1];
        FloatArray w = Host.floats(weight.data());
        return new PackedLinear(name, Kind.F32, in, out, in, false, ActMode.NONE, 0, 0, 0f, w, dummyB(), dummyF(), dummyB(), dummyF(),
                biasArray(name, bias, out), 4L * in * out);
    }

    /**
     * The device form of a quantized weight with its activation treatment.
     * @param w        the engine's codes and parameters (Layout.WEIGHT)
     * @param act      how activations are quantized: integer weights need DYNAMIC_TOKEN or STATIC_TENSOR, FP4 weights NONE
     * @param actFormat the activation format (a symmetric IntFormat) for the integer kinds, else null
     * @param actScale the calibrated activation step for STATIC_TENSOR
     * @throws UnsupportedOperationException naming the layer when no kernel implements the combination
     */
    public static PackedLinear quantized(String name, QuantizedTensor w, Tensor bias, ActMode act, NumberFormat actFormat, float actScale) {
        int[] m = matrix(name, w.shape());
        int out = m[0], in = m[1];
        NumberFormat f = w.format();
        GroupView v = w.view();
        int spr = v.segmentsPerRow(), seg = v.segmentLength();
        QuantParams p = w.params();
        byte[] codes = w.codes();
        FloatArray b = biasArray(name, bias, out);
        if (f instanceof IntFormat fi) {
            int qmin = 0, qmax = 0;
            if (act == ActMode.NONE) throw new UnsupportedOperationException("layer '" + name + "': integer weights " + f.id()
                    + " without activation quantization have no real low-bit kernel here (weight-only INT is not implemented; "
                    + "quantize the inputs to a symmetric int<=8 format)");
            if (!(actFormat instanceof IntFormat ai) || !(ai.kind() == IntFormat.Kind.SYMMETRIC || ai.kind() == IntFormat.Kind.SYMMETRIC_FULL))
                throw new UnsupportedOperationException("layer '" + name + "': input format " + (actFormat == null ? "none" : actFormat.id())
                        + " is not a symmetric integer format (the integer GEMMs take int<b>-sym or int<b>-sym-full activations)");
            qmin = ai.qmin();
            qmax = ai.qmax();
            if (act == ActMode.STATIC_TENSOR && !(actScale >= 0 && Float.isFinite(actScale))) throw new IllegalArgumentException(
                    "layer '" + name + "': static activation step " + actScale + " must be finite and >= 0");
            boolean asym = fi.kind() == IntFormat.Kind.ASYMMETRIC || fi.kind() == IntFormat.Kind.UNSIGNED;
            float[] sc = new float[out * spr];
            byte[] zp = asym ? new byte[out * spr] : null;
            for (int o = 0; o < out; o++) {
                for (int s = 0; s < spr; s++) {
                    int g = v.group(o, s);
                    sc[o * spr + s] = p.scale(g);
                    if (asym) zp[o * spr + s] = (byte) p.zeroPoint(g);
                }
            }
            FloatArray ws = Host.floats(sc);
            Int8Array wz = asym ? Host.bytes(zp) : dummyB();
            long paramBytes = 4L * sc.length + (asym ? zp.length : 0);
            if (fi.bits() == 4) {
                byte[] packed = PackedCodes.pack(codes, 4).bytes();
                return new PackedLinear(name, Kind.W4A8, in, out, seg, asym, act, qmin, qmax, act == ActMode.STATIC_TENSOR ? actScale : 0f,
                        dummyF(), Host.bytes(packed), ws, wz, dummyF(), b, packed.length + paramBytes);
            }
            byte[] levels = new byte[codes.length];
            for (int i = 0; i < codes.length; i++) levels[i] = (byte) (asym ? codes[i] & 0xFF : fi.levelOfCode(codes[i] & 0xFF));
            return new PackedLinear(name, Kind.W8A8, in, out, seg, asym, act, qmin, qmax, act == ActMode.STATIC_TENSOR ? actScale : 0f,
                    dummyF(), Host.bytes(levels), ws, wz, dummyF(), b, levels.length + paramBytes);
        }
        boolean fp4 = (f instanceof FpFormat && f.codeBits() <= 4) || (f instanceof BlockFormat bf && bf.codeBits() == 4);
        if (!fp4) throw new UnsupportedOperationException("layer '" + name + "': weight format " + f.id()
                + " has no real low-bit kernel here (supported: int2..int8 with integer activations, FP formats of at most 4 bits, "
                + "mxfp4, nvfp4)");
        if (act != ActMode.NONE) throw new UnsupportedOperationException("layer '" + name + "': FP4 weights " + f.id()
                + " run with FP32 activations; activation quantization on this layer has no real kernel here");
        double[] table = CodeTables.lut(f);
        float[] lut16 = new float[16];
        for (int c = 0; c < table.length && c < 16; c++) lut16[c] = (float) table[c];
        double div = CodeTables.div(f);
        double ts = f instanceof BlockFormat bf && !bf.isMx() ? p.tensorScale() : 1.0;
        float[] gs = new float[out * spr];
        for (int o = 0; o < out; o++) {
            for (int s = 0; s < spr; s++) gs[o * spr + s] = (float) (p.scale(v.group(o, s)) * ts / div);
        }
        byte[] packed = PackedCodes.pack(codes, 4).bytes();
        return new PackedLinear(name, Kind.FP4_LUT, in, out, seg, false, ActMode.NONE, 0, 0, 0f, dummyF(), Host.bytes(packed),
                Host.floats(gs), dummyB(), Host.floats(lut16), b,
                packed.length + 4L * gs.length + 64);
    }

    @Override public String toString() {
        return "PackedLinear[" + name + ", " + kind + ", " + out + "x" + in + (kind == Kind.F32 ? "" : ", group " + group)
                + (act == ActMode.NONE ? "" : ", activations " + act) + "]";
    }
}
