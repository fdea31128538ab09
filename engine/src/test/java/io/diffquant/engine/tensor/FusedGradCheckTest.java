package io.diffquant.engine.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static io.diffquant.engine.tensor.GradCheckTest.check;
import static io.diffquant.engine.tensor.GradCheckTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/** Backward rules of the fused DiT ({@link TransformerOps}) and UNet ({@link ConvOps}) kernels vs finite differences. */
class FusedGradCheckTest {
    private static Tensor[] ts(Tensor... t) { return t; }

    // ------------------------------------------------------------------ TransformerOps

    @Test void ditLayoutOps() {
        Random r = new Random(21);
        check("patchTokens", in -> TransformerOps.patchTokens(in[0], in[1]), ts(rand(r, 1, 2, 4, 2, 3), rand(r, 1, 1, 6, 4)), 1e-2);
        check("unpatchify", in -> TransformerOps.unpatchify(in[0], 2, 3), ts(rand(r, 1, 2, 4, 12)), 1e-2);
    }

    @Test void ditAdaLnOps() {
        Random r = new Random(22);
        check("layerNormModulate", in -> TransformerOps.layerNormModulate(in[0], in[1], 6, 3, 4, 1e-6f),
                ts(rand(r, 1, 2, 3, 5), rand(r, 0.5, 2, 30)), 1e-2);
        check("modulate", in -> TransformerOps.modulate(in[0], in[1], 2, 1, 0), ts(rand(r, 1, 2, 3, 4), rand(r, 0.5, 2, 8)), 1e-2);
        for (boolean intoY : new boolean[] {false, true})
            check("gatedResidual " + intoY, in -> TransformerOps.gatedResidual(in[0], Ops.scale(in[1], 1f), in[2], 6, 5, intoY),
                    ts(rand(r, 1, 2, 3, 4), rand(r, 1, 2, 3, 4), rand(r, 1, 2, 24)), 1e-2);
    }

    @Test void ditActivations() {
        Random r = new Random(23);
        check("TransformerOps.silu", in -> TransformerOps.silu(in[0]), ts(rand(r, 2, 37)), 1e-2);
        check("TransformerOps.geluTanh", in -> TransformerOps.geluTanh(in[0]), ts(rand(r, 2, 37)), 1e-2);
        check("geluTanhInPlace", in -> {
            Tensor y = Ops.scale(in[0], 1.5f);
            Tensor before = Ops.scale(y, 2f);          // a consumer of the old values
            TransformerOps.geluTanhInPlace(y);
            return Ops.add(Ops.mul(y, y), before);
        }, ts(rand(r, 1, 3, 13)), 1e-2);
        check("softmaxInPlace", in -> {
            Tensor s = Ops.scale(in[0], 1f);
            TransformerOps.softmaxInPlace(s);
            return Ops.mul(s, in[1]);
        }, ts(rand(r, 1, 2, 3, 5), rand(r, 1, 2, 3, 5)), 1e-2);
    }

    @Test void ditAttention() {
        Random r = new Random(24);
        check("attentionFromQkv", in -> TransformerOps.attentionFromQkv(in[0], 2, 0.6f), ts(rand(r, 1, 2, 3, 12)), 1e-2);
        // the explicit (probed) path: split, scores, softmax, apply
        check("explicit attention", in -> {
            Tensor[] s = TransformerOps.splitQkv(in[0], 2);
            Tensor p = TransformerOps.attentionScores(s[0], s[1], 0.6f);
            TransformerOps.softmaxInPlace(p);
            return TransformerOps.attentionApply(p, s[2]);
        }, ts(rand(r, 1, 2, 3, 12)), 1e-2);
        check("attentionScores", in -> TransformerOps.attentionScores(in[0], in[1], 0.7f),
                ts(rand(r, 1, 1, 2, 3, 4), rand(r, 1, 1, 2, 5, 4)), 1e-2);
        check("attentionApply", in -> TransformerOps.attentionApply(in[0], in[1]),
                ts(rand(r, 1, 2, 2, 3, 5), rand(r, 1, 2, 2, 5, 4)), 1e-2);
        check("classifierFreeGuidance", in -> TransformerOps.classifierFreeGuidance(in[0], 2, 4f), ts(rand(r, 1, 4, 3, 2, 2)), 1e-2);
        // fused and explicit paths give the same gradient
        Tensor qkv = rand(r, 1, 2, 4, 18);
        float[] g1, g2;
        try (Tape tape = Tape.start()) {
            g1 = tape.backward(Ops.sum(Ops.mul(TransformerOps.attentionFromQkv(qkv, 3, 0.5f), TransformerOps.attentionFromQkv(qkv, 3, 0.5f)))).raw(qkv);
        }
        try (Tape tape = Tape.start()) {
            Tensor[] s = TransformerOps.splitQkv(qkv, 3);
            Tensor p = TransformerOps.attentionScores(s[0], s[1], 0.5f);
            TransformerOps.softmaxInPlace(p);
            Tensor o = TransformerOps.attentionApply(p, s[2]);
            g2 = tape.backward(Ops.sum(Ops.mul(o, o))).raw(qkv);
        }
        for (int i = 0; i < g1.length; i++) assertEquals(g1[i], g2[i], 1e-5 + 1e-4 * Math.abs(g1[i]), "qkv gradient " + i);
    }

    // ------------------------------------------------------------------ ConvOps

    @Test void unetConvAndLayout() {
        Random r = new Random(25);
        check("ConvOps.conv2d 3x3", in -> ConvOps.conv2d(in[0], in[1], in[2], 1, 1),
                ts(rand(r, 1, 3, 2, 4, 5), rand(r, 0.4, 3, 2, 3, 3), rand(r, 1, 3)), 1e-2);
        check("ConvOps.conv2d s2", in -> ConvOps.conv2d(in[0], in[1], in[2], 2, 0),
                ts(rand(r, 1, 2, 2, 5, 5), rand(r, 0.4, 2, 2, 3, 3), rand(r, 1, 2)), 1e-2);
        check("ConvOps.conv2d 1x1", in -> ConvOps.conv2d(in[0], in[1], in[2], 1, 0),
                ts(rand(r, 1, 2, 3, 2, 2), rand(r, 0.4, 4, 3, 1, 1), rand(r, 1, 4)), 1e-2);
        check("pad", in -> ConvOps.pad(in[0], 0, 1, 2, 1), ts(rand(r, 1, 2, 2, 3, 2)), 1e-2);
        check("transposeLast2", in -> ConvOps.transposeLast2(in[0]), ts(rand(r, 1, 2, 3, 5)), 1e-2);
        check("affine", in -> ConvOps.affine(in[0], 2f, -1f), ts(rand(r, 1, 2, 5)), 1e-2);
        check("divPerSample", in -> ConvOps.divPerSample(in[0], new float[] {2f, 0.5f}), ts(rand(r, 1, 2, 5)), 1e-2);
    }

    @Test void unetNormAndResidual() {
        Random r = new Random(26);
        for (boolean silu : new boolean[] {true, false}) {
            check("groupNormAct ss silu=" + silu, in -> ConvOps.groupNormAct(in[0], 2, in[1], in[2], 1e-5f, in[3], silu),
                    ts(rand(r, 1, 2, 4, 2, 3), rand(r, 1, 4), rand(r, 1, 4), rand(r, 0.5, 2, 8)), 1e-2);
            check("groupNormAct silu=" + silu, in -> ConvOps.groupNormAct(in[0], 4, in[1], in[2], 1e-5f, null, silu),
                    ts(rand(r, 1, 2, 4, 2, 2), rand(r, 1, 4), rand(r, 1, 4)), 1e-2);
        }
        check("ConvOps.silu", in -> ConvOps.silu(in[0]), ts(rand(r, 2, 29)), 1e-2);
        check("scaleShift", in -> ConvOps.scaleShift(in[0], in[1]), ts(rand(r, 1, 2, 3, 2, 2), rand(r, 1, 2, 6)), 1e-2);
        for (float div : new float[] {1f, 2f}) {
            check("residualAddInPlace /" + div, in -> {
                Tensor y = Ops.scale(in[0], 1f);
                Tensor old = Ops.scale(y, 3f);
                ConvOps.residualAddInPlace(y, in[1], div);
                return Ops.add(Ops.mul(y, y), old);
            }, ts(rand(r, 1, 2, 3, 2), rand(r, 1, 2, 3, 2)), 1e-2);
            check("residualAddInPlace self /" + div, in -> {
                Tensor y = Ops.scale(in[0], 1f);
                ConvOps.residualAddInPlace(y, y, div);
                return Ops.mul(y, y);
            }, ts(rand(r, 1, 2, 5)), 1e-2);
        }
    }

    @Test void unetAttention() {
        Random r = new Random(27);
        check("multiHeadAttention", in -> ConvOps.multiHeadAttention(in[0], in[1], in[2], 2, 0.6f),
                ts(rand(r, 1, 2, 3, 4), rand(r, 1, 2, 5, 4), rand(r, 1, 2, 5, 4)), 1e-2);
        check("explicit token attention", in -> ConvOps.attentionValues(
                        ConvOps.softmax(ConvOps.attentionScores(in[0], in[1], 2, 0.6f)), in[2], 2),
                ts(rand(r, 1, 2, 3, 4), rand(r, 1, 2, 5, 4), rand(r, 1, 2, 5, 4)), 1e-2);
        check("ConvOps.softmax", in -> ConvOps.softmax(in[0]), ts(rand(r, 1, 3, 7)), 1e-2);
    }

    @Test void inPlaceGeluOnSavedValuesIsRefused() {
        try (Tape tape = Tape.start()) {
            Tensor x = Ops.scale(Tensor.full(1f, 2, 2), 1f);
            Ops.mul(x, x); // keeps x's values
            assertThrows(IllegalStateException.class, () -> TransformerOps.geluTanhInPlace(x));
            assertThrows(IllegalStateException.class, () -> ConvOps.residualAddInPlace(x, x, 1f));
        }
    }
}
