package io.diffquant.engine.quant;

/** Calibrated parameters of one quant point: weight (null when the weight is off) and input (null when off or dynamic). */
public record LayerParams(WeightParams weight, InputParams input) {
    public LayerParams withWeight(WeightParams w) { return new LayerParams(w, input); }
    public LayerParams withInput(InputParams in) { return new LayerParams(weight, in); }
    public boolean isEmpty() { return weight == null && input == null; }
}
