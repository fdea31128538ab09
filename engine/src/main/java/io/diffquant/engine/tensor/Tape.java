package io.diffquant.engine.tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Thread-confined reverse-mode autodiff tape (the define-by-run scheme of PyTorch autograd / micrograd, with
 * hand-written backward closures per op).
 *
 * <pre>{@code
 * try (Tape tape = Tape.start()) {
 *     Tensor loss = ...;                     // ops record themselves while a tape is active on this thread
 *     Gradients g = tape.backward(loss);     // g.get(param) for every parameter reached
 * }
 * }</pre>
 *
 * <p><b>Keys.</b> Gradients are keyed by the identity of a tensor's backing {@code float[]}, not of the
 * {@link Tensor} object: {@link Tensor#reshape} and {@code Tensor.of(t.data(), shape)} make new objects over
 * the same row-major buffer, and a gradient has exactly the buffer's layout, so views need no recording and
 * can never disconnect the graph. A gradient is therefore shared by all views of one buffer.
 *
 * <p><b>In-place ops.</b> In-place ops (bias adds, {@link Ops#addInPlace}, in-place activations) are recorded
 * as nodes whose output buffer is their target. The backward pass visits such a node after every consumer of
 * the new values and before every consumer of the old ones, so the target's accumulator then holds exactly
 * d(loss)/d(new values): an additive update passes it through (adding it to the other operand's gradient), a
 * non-additive one transforms it in place into d(loss)/d(old values). This is only unsafe when an earlier
 * recorded op kept the target's values for its own backward pass ({@link #save}); such an in-place update
 * throws {@link IllegalStateException}.
 *
 * <p>Ops check {@link #active()} (one ThreadLocal read) and do nothing else when no tape records. Work that
 * Ops hand to {@link Parallel} workers is never recorded (the tape is confined to the recording thread).
 */
public final class Tape implements AutoCloseable {
    private static final ThreadLocal<Tape> ACTIVE = new ThreadLocal<>();

    /** The backward rule of one recorded op: add d(loss)/d(input) for each input into {@code g}. */
    @FunctionalInterface
    public interface Backward {
        /**
         * @param gy gradient of the op's output, laid out like the output's buffer: read only, except for the
         *           rules of {@link #recordInPlace} (see there)
         */
        void apply(float[] gy, Grads g);
    }

    /** Gradient accumulators handed to {@link Backward} rules. */
    public interface Grads {
        /**
         * The zero-initialised (on first use) accumulator for {@code input}'s buffer, to be ADDED into;
         * null when no gradient is wanted for it (the rule should then skip that input's computation).
         */
        float[] of(Tensor input);
    }

    private record Node(String op, float[] out, Backward fn, boolean inPlace) {}

    private final Thread owner = Thread.currentThread();
    private final List<Node> nodes = new ArrayList<>();
    /** buffers whose values some recorded backward rule reads. */
    private final Map<float[], Boolean> saved = new IdentityHashMap<>();
    /** null = every buffer may need a gradient; otherwise the buffers that do (leaves + outputs depending on them). */
    private final Map<float[], Boolean> needs;
    private boolean finished;
    private boolean closed;
    private Map<String, long[]> profile;

    private Tape(Map<float[], Boolean> needs) { this.needs = needs; }

    /** Starts recording on the current thread: every tensor may receive a gradient. */
    public static Tape start() {
        return begin(null);
    }

    /**
     * Starts recording on the current thread, computing gradients only for {@code leaves} (typically the
     * trainable parameters) and the tensors that depend on them; rules skip the rest (e.g. d/d input image).
     */
    public static Tape start(Iterable<Tensor> leaves) {
        Map<float[], Boolean> n = new IdentityHashMap<>();
        for (Tensor t : leaves) n.put(t.data(), Boolean.TRUE);
        return begin(n);
    }

    private static Tape begin(Map<float[], Boolean> needs) {
        if (ACTIVE.get() != null) throw new IllegalStateException(
                "a Tape is already recording on this thread; close it before starting another");
        Tape t = new Tape(needs);
        ACTIVE.set(t);
        return t;
    }

    /** The tape recording on this thread, or null. */
    public static Tape active() { return ACTIVE.get(); }

    /**
     * Suspends recording on this thread until the returned handle is closed (like torch.no_grad()):
     * {@code try (var off = Tape.pause()) { ... }}.
     */
    public static Pause pause() {
        Tape t = ACTIVE.get();
        ACTIVE.remove();
        return new Resume(t);
    }

    /** The handle of {@link #pause()}: closing it resumes recording; it throws no checked exception. */
    public interface Pause extends AutoCloseable {
        @Override void close();
    }

    private record Resume(Tape tape) implements Pause {
        @Override public void close() { if (tape != null && !tape.closed && !tape.finished) ACTIVE.set(tape); }
    }

    /** Number of recorded ops (for tests and diagnostics). */
    public int size() { return nodes.size(); }

    /**
     * Collect the wall time and the calling thread's CPU time of each op's backward rule (diagnostics; off by default).
     * With one engine thread (and single-threaded native GEMMs) the CPU time is the rule's whole cost on a loaded machine.
     */
    public Tape profileBackward(boolean on) {
        profile = on ? new java.util.LinkedHashMap<>() : null;
        return this;
    }

    /** Per op name: {calls, wall nanoseconds, calling-thread CPU nanoseconds} spent in backward rules, when {@link #profileBackward} was on. */
    public Map<String, long[]> backwardProfile() {
        return profile == null ? Map.of() : java.util.Collections.unmodifiableMap(profile);
    }

    private Map<String, long[]> forwardProfile;
    private long lastRecordCpu;

    /**
     * Attribute the calling thread's CPU time between consecutive recordings to the op recorded at the end of each
     * interval (diagnostics; off by default): ops record themselves when they finish, so with one engine thread this is
     * each op's forward cost (plus whatever unrecorded work ran just before it).
     */
    public Tape profileForward(boolean on) {
        forwardProfile = on ? new java.util.LinkedHashMap<>() : null;
        lastRecordCpu = on ? java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() : 0;
        return this;
    }

    /** Per op name: {calls, calling-thread CPU nanoseconds} of the forward pass, when {@link #profileForward} was on. */
    public Map<String, long[]> forwardProfile() {
        return forwardProfile == null ? Map.of() : java.util.Collections.unmodifiableMap(forwardProfile);
    }

    private void tick(String op) {
        if (forwardProfile == null) return;
        long now = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
        long[] acc = forwardProfile.computeIfAbsent(op, k -> new long[2]);
        acc[0]++;
        acc[1] += now - lastRecordCpu;
        lastRecordCpu = now;
    }

    // ------------------------------------------------------------------ recording API for op implementations

    /**
     * Records an op that produced the fresh buffer {@code out} from {@code inputs}. Rules that read input or
     * output VALUES in backward must also call {@link #save} on them.
     */
    public void record(String op, Tensor out, Backward fn, Tensor... inputs) {
        checkOpen(op);
        tick(op);
        for (Tensor in : inputs) if (in != null && in.data() == out.data()) throw new IllegalStateException(
                op + ": output shares its buffer with an input; record it with recordInPlace");
        if (needs != null) {
            if (!anyNeeds(inputs)) return;
            needs.put(out.data(), Boolean.TRUE);
        }
        nodes.add(new Node(op, out.data(), fn, false));
    }

    /**
     * Records an in-place update of {@code target} (using {@code others}). The rule receives as {@code gy} the
     * target buffer's own gradient accumulator, which at that point holds exactly d(loss)/d(new values): an
     * additive update leaves it alone and adds it into the others' gradients; a non-additive one (an in-place
     * activation, a rescale) transforms it IN PLACE into d(loss)/d(old values), after reading what it needs.
     * Call this BEFORE modifying the target (the check below looks at who reads its current values).
     *
     * @throws IllegalStateException when a recorded op needs the target's current values for its backward pass
     */
    public void recordInPlace(String op, Tensor target, Backward fn, Tensor... others) {
        checkOpen(op);
        tick(op);
        if (saved.containsKey(target.data())) throw new IllegalStateException(op + ": in-place update of a "
                + Arrays.toString(target.shape()) + " tensor whose values an earlier recorded op needs for its "
                + "backward pass; use the out-of-place op (e.g. Ops.add) while a Tape is recording");
        if (needs != null) {
            if (!needs.containsKey(target.data()) && !anyNeeds(others)) return;
            needs.put(target.data(), Boolean.TRUE);
        }
        nodes.add(new Node(op, target.data(), fn, true));
    }

    /** Declares that a recorded backward rule reads these tensors' current values (guards in-place ops). */
    public void save(Tensor... ts) {
        for (Tensor t : ts) if (t != null) saved.put(t.data(), Boolean.TRUE);
    }

    /** Whether a gradient may be wanted for t (always true for a tape started without leaves). */
    public boolean needsGrad(Tensor t) {
        return t != null && (needs == null || needs.containsKey(t.data()));
    }

    private boolean anyNeeds(Tensor[] ts) {
        for (Tensor t : ts) if (t != null && needs.containsKey(t.data())) return true;
        return false;
    }

    private void checkOpen(String op) {
        if (Thread.currentThread() != owner) throw new IllegalStateException(
                op + ": a Tape is confined to the thread that started it");
        if (finished || closed) throw new IllegalStateException(op + ": the Tape has already run backward or is closed");
    }

    // ------------------------------------------------------------------ backward

    /** Reverse pass from a scalar (one-element) loss; d(loss)/d(loss) = 1. Intermediate gradients are dropped. */
    public Gradients backward(Tensor loss) {
        if (loss.size() != 1) throw new IllegalArgumentException(
                "backward(loss): loss must have one element, got shape " + Arrays.toString(loss.shape())
                        + "; reduce it (Ops.mean) or pass an explicit output gradient");
        return backward(loss, Tensor.full(1f, loss.shape()), false);
    }

    /**
     * Reverse pass seeded with {@code gradOut} (same number of elements as {@code out}).
     *
     * @param retainAll keep the gradients of intermediate tensors too (tests, debugging); otherwise only
     *                  buffers no recorded op produced (parameters, inputs) keep theirs
     */
    public Gradients backward(Tensor out, Tensor gradOut, boolean retainAll) {
        if (Thread.currentThread() != owner) throw new IllegalStateException("backward: a Tape is confined to the thread that started it");
        if (finished) throw new IllegalStateException("backward: this Tape has already run backward");
        if (gradOut.size() != out.size()) throw new IllegalArgumentException("backward: output gradient has "
                + gradOut.size() + " elements, the output " + out.size());
        finished = true;
        if (ACTIVE.get() == this) ACTIVE.remove();
        Map<float[], float[]> grads = new IdentityHashMap<>();
        grads.put(out.data(), gradOut.data().clone());
        Grads sink = t -> {
            if (t == null) return null;
            float[] key = t.data();
            if (needs != null && !needs.containsKey(key)) return null;
            float[] g = grads.get(key);
            if (g == null) {
                g = new float[key.length];
                grads.put(key, g);
            }
            return g;
        };
        for (int i = nodes.size() - 1; i >= 0; i--) {
            Node n = nodes.get(i);
            nodes.set(i, null);
            float[] gy = grads.get(n.out);
            if (gy == null) continue;
            if (!n.inPlace && !retainAll) grads.remove(n.out);
            if (profile == null) {
                n.fn.apply(gy, sink);
            } else {
                var mx = java.lang.management.ManagementFactory.getThreadMXBean();
                long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
                n.fn.apply(gy, sink);
                long t1 = System.nanoTime(), c1 = mx.getCurrentThreadCpuTime();
                long[] acc = profile.computeIfAbsent(n.op, k -> new long[3]);
                acc[0]++;
                acc[1] += t1 - t0;
                acc[2] += c1 - c0;
            }
        }
        nodes.clear();
        saved.clear();
        return new Gradients(grads);
    }

    /** Stops recording (idempotent). */
    @Override public void close() {
        closed = true;
        if (ACTIVE.get() == this) ACTIVE.remove();
        nodes.clear();
        saved.clear();
    }
}
