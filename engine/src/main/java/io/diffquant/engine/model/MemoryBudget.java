package io.diffquant.engine.model;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.util.Locale;

/**
 * Heap accounting for loading big checkpoints: a check before a model is allocated (its FP32 parameter bytes against
 * {@link Runtime#maxMemory()} and the machine's physical memory) with an actionable message naming the
 * {@code DIFFQUANT_HEAP} setting of bin/diffquant, and the peak heap use read from the JVM's memory pools
 * (java.lang.management {@link MemoryPoolMXBean#getPeakUsage()}).
 */
public final class MemoryBudget {
    private MemoryBudget() {}

    /** Headroom kept for activations and the rest of the program: 15 % of the weights plus 64 MiB. */
    static long headroom(long weightBytes) { return weightBytes / 100 * 15 + (64L << 20); }

    /** Thrown when a model does not fit; the message says what to set. */
    public static final class InsufficientMemoryException extends IllegalStateException {
        private final long needBytes;

        InsufficientMemoryException(String message, long needBytes) {
            super(message);
            this.needBytes = needBytes;
        }

        /** Heap the load needs (weights plus headroom). */
        public long needBytes() { return needBytes; }
    }

    /**
     * Throws when {@code weightBytes} of FP32 parameters (plus headroom) do not fit in the heap this JVM may still grow
     * to, or not in the machine's memory at all.
     *
     * @param what e.g. "DiT-XL/2 (/models/dit-xl-2)"
     */
    public static void require(long weightBytes, String what) {
        Runtime rt = Runtime.getRuntime();
        try {
            check(weightBytes, rt.maxMemory(), rt.totalMemory() - rt.freeMemory(), physicalMemory(), what);
        } catch (InsufficientMemoryException e) {
            System.gc();   // the used-heap figure may include garbage: measure once more after a collection
            check(weightBytes, rt.maxMemory(), rt.totalMemory() - rt.freeMemory(), physicalMemory(), what);
        }
    }

    /** {@link #require} with explicit numbers (testable): maxHeap and usedHeap of the JVM, physical RAM (0 = unknown). */
    public static void check(long weightBytes, long maxHeap, long usedHeap, long physical, String what) {
        long need = weightBytes + headroom(weightBytes);
        long free = maxHeap - usedHeap;
        if (need <= free) return;
        long suggestGiB = (usedHeap + need + (1L << 30) - 1) >> 30;
        String base = what + " needs " + gib(weightBytes) + " of heap for its FP32 weights (" + gib(need)
                + " with room for activations), but the JVM heap is limited to " + gib(maxHeap) + " (" + gib(free) + " free)";
        if (physical > 0 && usedHeap + need > physical) {
            throw new InsufficientMemoryException(base + " and this machine has only " + gib(physical)
                    + " of memory: use a machine with at least " + (suggestGiB + 2) + " GiB, or a smaller model", need);
        }
        throw new InsufficientMemoryException(base + ": start with a larger heap, e.g. DIFFQUANT_HEAP=-Xmx" + suggestGiB
                + "g bin/diffquant ... (or java -Xmx" + suggestGiB + "g)", need);
    }

    /**
     * Throws when a computation's working memory of {@code bytes} (beyond what is allocated now) does not fit in the heap
     * this JVM may still grow to; the message names the computation and what to do ({@code advice}, e.g. a cheaper
     * setting). Measures the used heap after a collection.
     */
    public static void requireWorkspace(long bytes, String what, String advice) {
        checkWorkspace(bytes, Runtime.getRuntime().maxMemory(), usedFor(bytes), physicalMemory(), what, advice);
    }

    /** Whether {@code bytes} of working memory fit the heap this JVM may still grow to (measured after a collection). */
    public static boolean fitsWorkspace(long bytes) {
        return bytes <= Runtime.getRuntime().maxMemory() - usedFor(bytes);
    }

    /** The heap in use; measured again after a collection when {@code bytes} do not fit beside it (it may be garbage). */
    private static long usedFor(long bytes) {
        Runtime rt = Runtime.getRuntime();
        long used = rt.totalMemory() - rt.freeMemory();
        if (bytes <= rt.maxMemory() - used) return used;
        System.gc();
        return rt.totalMemory() - rt.freeMemory();
    }

    /** {@link #requireWorkspace} with explicit numbers (testable). */
    public static void checkWorkspace(long bytes, long maxHeap, long usedHeap, long physical, String what, String advice) {
        long free = maxHeap - usedHeap;
        if (bytes <= free) return;
        long suggestGiB = (usedHeap + bytes + (1L << 30) - 1) >> 30;
        String base = what + " needs about " + gib(bytes) + " of heap, but the JVM heap is limited to " + gib(maxHeap) + " (" + gib(free)
                + " free)";
        String fix = physical > 0 && usedHeap + bytes > physical
                ? " and this machine has only " + gib(physical) + " of memory"
                : ": start with a larger heap, e.g. DIFFQUANT_HEAP=-Xmx" + suggestGiB + "g bin/diffquant ... (or java -Xmx" + suggestGiB + "g)";
        throw new InsufficientMemoryException(base + fix + (advice == null || advice.isBlank() ? "" : "; or " + advice), bytes);
    }

    static String gib(long bytes) { return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30)); }

    /** Physical memory of the machine in bytes, or 0 when the platform does not say. */
    public static long physicalMemory() {
        try {
            if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
                return os.getTotalMemorySize();
        } catch (RuntimeException | LinkageError ignored) {
            // not available on this JVM
        }
        return 0;
    }

    /** Heap in use now (MemoryMXBean). */
    public static long usedHeap() { return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed(); }

    /**
     * Peak heap use since the JVM started or {@link #resetPeak()}: the sum of the heap pools' peaks (an upper bound of
     * the true peak, since pools may peak at different moments).
     */
    public static long peakHeap() {
        long sum = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans())
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) sum += p.getPeakUsage().getUsed();
        return sum;
    }

    /** Resets the pools' peaks to their current use. */
    public static void resetPeak() {
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) if (p.getType() == MemoryType.HEAP) p.resetPeakUsage();
    }
}
