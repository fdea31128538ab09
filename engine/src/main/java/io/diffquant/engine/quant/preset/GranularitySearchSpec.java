package io.diffquant.engine.quant.preset;

import io.diffquant.engine.quant.format.Granularity;
import io.diffquant.engine.quant.search.GroupSizeSearch;
import io.diffquant.engine.quant.spec.LayerOverride;
import io.diffquant.engine.quant.spec.SpecPatch;

import java.util.ArrayList;
import java.util.List;

/**
 * What Q-DiT's granularity search of a preset runs on: one gene per quantized layer, the search settings and the
 * objective's name ({@code output-mse}: mean squared error of the quantized model's output against full precision
 * on the calibration batches; {@code fid-fmnist}: FID-FMNIST of images sampled by the quantized model,
 * {@link io.diffquant.engine.quant.search.FidFmnistObjective}; other objectives plug in through {@link CalibrationJob}).
 */
public record GranularitySearchSpec(List<GroupSizeSearch.Gene> genes, GroupSizeSearch.Settings settings, String objective) {
    public GranularitySearchSpec {
        genes = List.copyOf(genes);
    }

    /** The overrides that give every gene's layer its group size (weight and input share it). */
    public List<LayerOverride> overrides(int[] genome) {
        if (genome.length != genes.size()) throw new IllegalArgumentException("genome has " + genome.length + " genes, the search has " + genes.size());
        List<LayerOverride> out = new ArrayList<>();
        for (int i = 0; i < genome.length; i++) {
            Granularity g = Granularity.group(genome[i]);
            out.add(new LayerOverride(genes.get(i).layer(), new SpecPatch(null, null, g, null, null),
                    new SpecPatch(null, null, g, null, null), "search gene " + i));
        }
        return out;
    }
}
