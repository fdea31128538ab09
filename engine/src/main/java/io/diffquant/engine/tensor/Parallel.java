package io.diffquant.engine.tensor;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/** Splits index ranges over a fixed worker pool. Results never depend on the thread count. */
public final class Parallel {
    private static volatile ForkJoinPool pool = new ForkJoinPool(EngineSettings.threads());

    private Parallel() {}

    public static int threads() { return pool.getParallelism(); }

    /** Re-creates the pool with n workers (n >= 1). */
    public static synchronized void setThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads must be >= 1, got " + n);
        ForkJoinPool old = pool;
        pool = new ForkJoinPool(n);
        old.shutdown();
    }

    @FunctionalInterface
    public interface RangeBody { void run(int from, int to); }

    /** Runs body over [0, n) in chunks; work smaller than minChunk elements per chunk stays on the caller. */
    public static void forRange(int n, int minChunk, RangeBody body) {
        int t = threads();
        if (n <= minChunk || t == 1) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(n / Math.max(1, minChunk), t * 4);
        if (chunks <= 1) {
            body.run(0, n);
            return;
        }
        final int nChunks = chunks;
        RecursiveAction root = new RecursiveAction() {
            @Override protected void compute() {
                RecursiveAction[] tasks = new RecursiveAction[nChunks];
                for (int c = 0; c < nChunks; c++) {
                    final int from = (int) ((long) n * c / nChunks);
                    final int to = (int) ((long) n * (c + 1) / nChunks);
                    tasks[c] = new RecursiveAction() {
                        @Override protected void compute() { body.run(from, to); }
                    };
                }
                invokeAll(tasks);
            }
        };
        if (Thread.currentThread() instanceof java.util.concurrent.ForkJoinWorkerThread wt && wt.getPool() == pool) {
            root.invoke();
        } else {
            pool.invoke(root);
        }
    }
}
