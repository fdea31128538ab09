package io.diffquant.app.gui.vm;

import javafx.beans.property.ReadOnlyBooleanProperty;
import javafx.beans.property.ReadOnlyBooleanWrapper;
import javafx.beans.property.ReadOnlyStringProperty;
import javafx.beans.property.ReadOnlyStringWrapper;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Undo/redo stack of layer-spec edits (the command pattern: each edit keeps the specs before and after, by layer
 * name). A new edit clears the redo side; the oldest edits are dropped beyond {@link #limit()}.
 */
public final class EditHistory {
    /**
     * One undoable edit: the specs of the touched layers before and after it, and the method (preset) before and after
     * when the edit changed it (both null otherwise).
     */
    public record Edit(String description, Map<String, LayerQuantSpec> before, Map<String, LayerQuantSpec> after,
                       MethodChoice methodBefore, MethodChoice methodAfter) {
        public Edit {
            before = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(before));
            after = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(after));
        }
        public Edit(String description, Map<String, LayerQuantSpec> before, Map<String, LayerQuantSpec> after) {
            this(description, before, after, null, null);
        }
        public int size() { return after.size(); }
        public boolean changesMethod() { return methodAfter != null; }
    }

    private final int limit;
    private final Deque<Edit> undo = new ArrayDeque<>();
    private final Deque<Edit> redo = new ArrayDeque<>();
    private final ReadOnlyBooleanWrapper canUndo = new ReadOnlyBooleanWrapper(this, "canUndo");
    private final ReadOnlyBooleanWrapper canRedo = new ReadOnlyBooleanWrapper(this, "canRedo");
    private final ReadOnlyStringWrapper undoText = new ReadOnlyStringWrapper(this, "undoText", "");
    private final ReadOnlyStringWrapper redoText = new ReadOnlyStringWrapper(this, "redoText", "");

    public EditHistory(int limit) {
        if (limit < 1) throw new IllegalArgumentException("edit history limit must be >= 1, got " + limit);
        this.limit = limit;
    }

    public int limit() { return limit; }

    /** Records an edit that has just been applied. */
    public void push(Edit e) {
        undo.push(e);
        while (undo.size() > limit) undo.removeLast();
        redo.clear();
        refresh();
    }

    /** Pops the edit to revert (apply its {@code before}), or null if there is none. */
    public Edit undo() {
        Edit e = undo.poll();
        if (e != null) redo.push(e);
        refresh();
        return e;
    }

    /** Pops the edit to re-apply (apply its {@code after}), or null if there is none. */
    public Edit redo() {
        Edit e = redo.poll();
        if (e != null) undo.push(e);
        refresh();
        return e;
    }

    public void clear() {
        undo.clear();
        redo.clear();
        refresh();
    }

    public int undoSize() { return undo.size(); }
    public int redoSize() { return redo.size(); }

    public ReadOnlyBooleanProperty canUndoProperty() { return canUndo.getReadOnlyProperty(); }
    public ReadOnlyBooleanProperty canRedoProperty() { return canRedo.getReadOnlyProperty(); }
    /** "Undo <description>" of the next undo ("" if none). */
    public ReadOnlyStringProperty undoTextProperty() { return undoText.getReadOnlyProperty(); }
    public ReadOnlyStringProperty redoTextProperty() { return redoText.getReadOnlyProperty(); }

    private void refresh() {
        canUndo.set(!undo.isEmpty());
        canRedo.set(!redo.isEmpty());
        undoText.set(undo.isEmpty() ? "" : "Undo " + undo.peek().description());
        redoText.set(redo.isEmpty() ? "" : "Redo " + redo.peek().description());
    }
}
