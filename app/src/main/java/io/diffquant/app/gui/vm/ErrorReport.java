package io.diffquant.app.gui.vm;

import java.nio.file.NoSuchFileException;

/**
 * An error for the user (Habit 9: what was wrong, where, what was expected): a title, the thing concerned (file,
 * folder, field) and the message chain of the cause, never a bare stack trace.
 *
 * @param title   what failed ("Cannot open model folder")
 * @param subject the file, folder or field concerned ("" if none)
 * @param message what was wrong and what was expected
 * @param cause   the exception (for the "details" section and the log), or null
 */
public record ErrorReport(String title, String subject, String message, Throwable cause) {

    /** A report whose message is the cause's message chain (each distinct message once). */
    public static ErrorReport of(String title, String subject, Throwable cause) {
        return new ErrorReport(title, subject == null ? "" : subject, describe(cause), cause);
    }

    /** The messages of an exception and its causes, one per line, skipping repeats; the class name if none has one. */
    public static String describe(Throwable t) {
        if (t == null) return "unknown error";
        StringBuilder sb = new StringBuilder();
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        String last = null;
        for (Throwable c = t; c != null && seen.add(c); c = c.getCause()) {
            String m = message(c);
            if (m == null || (last != null && last.contains(m))) continue;
            if (!sb.isEmpty()) sb.append('\n');
            sb.append(m);
            last = m;
        }
        return sb.isEmpty() ? t.getClass().getSimpleName() : sb.toString();
    }

    private static String message(Throwable c) {
        if (c instanceof NoSuchFileException nf) {
            String reason = nf.getReason();
            return nf.getFile() + (reason == null ? ": no such file" : ": " + reason);
        }
        String m = c.getMessage();
        if (m == null || m.isBlank()) return c instanceof OutOfMemoryError ? "out of memory (raise the heap: DIFFQUANT_HEAP=-Xmx16g)" : null;
        return c instanceof RuntimeException || c instanceof java.io.IOException ? m : c.getClass().getSimpleName() + ": " + m;
    }
}
