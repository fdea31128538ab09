#!/usr/bin/python3
"""PyTorch peer of the engine benchmark: times the FP32 forward pass of a DiT or UNet2DModel model folder.

    /usr/bin/python3 tools/bench/torch_bench.py MODEL_DIR [--batch 1 8 32] [--threads 2] [--warmup 2]
                                                [--iters 5] [--min-seconds 3]
    /usr/bin/python3 tools/bench/torch_bench.py --make-model OUT_DIR      # random DiT-S/2 + small UNet folders

MODEL_DIR is a product model folder: config.json with "_class_name" "DiT" + model.safetensors, or a diffusers
UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors). The model is built with the same
re-implementation classes as the golden files (tools/golden/torch_models.py) and loaded from the safetensors.
Prints one JSON line per batch size on stdout:
  {"model", "batch", "seconds_per_forward" (median), "seconds_mean", "iterations", "images_per_second",
   "cpu_seconds_per_forward" (median process CPU time of a pass, all threads), "threads", "torch", "blas", "conv", "cpu"}
Thread count: torch.set_num_threads(N) and, before torch is loaded, OMP_NUM_THREADS / OPENBLAS_NUM_THREADS = N
(Debian's torch calls the system libblas, i.e. OpenBLAS-pthread, which has its own thread pool) and
OMP_WAIT_POLICY=PASSIVE: with libgomp's default spinning, idle OpenMP threads fight OpenBLAS's threads for the
cores and the DiT-S/2 forward ran up to ~30x slower on a 2-core machine. PASSIVE gives PyTorch its best showing.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_TOOLS = os.path.join(HERE, "..", "golden")

DIT_S2 = {"_class_name": "DiT", "input_size": 32, "patch_size": 2, "in_channels": 4, "hidden_size": 384,
          "depth": 12, "num_heads": 6, "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 1000,
          "learn_sigma": True}


def unet_small_32():
    """A CIFAR-10-sized UNet2DModel (32x32x3): 3 levels [64, 128, 128], one resnet per level, attention at the
    middle level (+ mid block), 32 norm groups; the other settings follow google/ddpm-cifar10-32."""
    import make_golden as mg
    return mg.unet_config(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=[64, 128, 128], layers_per_block=1,
        down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], norm_num_groups=32,
        attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
        resnet_time_scale_shift="default", num_class_embeds=None, class_embed_type=None)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", help="model folder (config.json + safetensors)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed forward passes per batch size (default 2)")
    ap.add_argument("--iters", type=int, default=5, help="minimum timed forward passes (default 5)")
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="keep timing until this much time has passed (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "inherit"],
                    help="OMP_WAIT_POLICY for torch's OpenMP pool (default PASSIVE: idle OpenMP threads must not "
                         "spin while OpenBLAS's own threads run the GEMMs; 'inherit' keeps the environment's)")
    ap.add_argument("--make-model", metavar="OUT_DIR",
                    help="write random-weight model folders OUT_DIR/dit-s-2 and OUT_DIR/unet-32 and exit")
    a = ap.parse_args(argv)
    if not a.make_model and not a.model_dir:
        ap.error("give a model folder or --make-model OUT_DIR")
    if a.threads < 1 or any(b < 1 for b in a.batch) or a.iters < 1 or a.warmup < 0:
        ap.error("threads, batch sizes and iters must be >= 1, warmup >= 0")
    return a


def blas_summary(torch):
    """What torch computes GEMMs and convolutions with: build info plus the BLAS library actually mapped."""
    import re
    build = dict(re.findall(r"\b([A-Z_]+)=([^,\s]*)", torch.__config__.show()))
    loaded = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                base = os.path.basename(p)
                if ("blas" in base or "mkl" in base or "dnnl" in base) and p not in loaded:
                    loaded.append(p)
    except OSError:
        pass
    blas = next((os.path.basename(p) for p in loaded if "openblas" in p), None) or \
        next((os.path.basename(p) for p in loaded if "blas" in os.path.basename(p)), "unknown")
    return (f"{blas} (BLAS_INFO={build.get('BLAS_INFO', '?')}, LAPACK_INFO={build.get('LAPACK_INFO', '?')}, "
            f"USE_MKLDNN={build.get('USE_MKLDNN', '?')}, mkldnn_enabled={torch.backends.mkldnn.enabled}); "
            f"loaded: {', '.join(loaded) if loaded else 'n/a'}")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_folder(torch, tm, mg, out_dir, name, cfg, weights_file, model, seed):
    import shutil
    final = os.path.join(out_dir, name)
    tmp = final + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    mg.randomize_(model, seed=seed)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=cfg.get("_class_name") == "UNet2DModel")
        f.write("\n")
    tm.save_safetensors(os.path.join(tmp, weights_file), dict(model.state_dict()),
                        {"format": "pt", "generator": "tools/bench/torch_bench.py --make-model (random weights)"})
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def make_models(out_dir):
    import torch
    sys.path.insert(0, GOLDEN_TOOLS)
    import torch_models as tm
    import make_golden as mg
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    dit = tm.dit_from_config(DIT_S2)
    p1 = write_folder(torch, tm, mg, out_dir, "dit-s-2", DIT_S2, "model.safetensors", dit, seed=11)
    ucfg = unet_small_32()
    unet = tm.UNet2DModel(ucfg)
    p2 = write_folder(torch, tm, mg, out_dir, "unet-32", ucfg, "diffusion_pytorch_model.safetensors", unet, seed=12)
    for p, m in ((p1, dit), (p2, unet)):
        n = sum(t.numel() for t in m.state_dict().values())
        print(json.dumps({"made": p, "parameters": n}))


def run_bench(a):
    import torch
    sys.path.insert(0, GOLDEN_TOOLS)
    import torch_models as tm
    torch.set_num_threads(a.threads)
    model, cfg = tm.load_model_folder(a.model_dir)
    name = os.path.basename(os.path.normpath(a.model_dir))
    g = torch.Generator().manual_seed(a.seed)
    if cfg["_class_name"] == "DiT":
        c, s = cfg["in_channels"], cfg["input_size"]
        ncls = cfg["num_classes"]
    else:
        c, s = model.config["in_channels"], model.config["sample_size"]
        if s is None:
            raise SystemExit(f"{a.model_dir}/config.json: sample_size is null; cannot choose an input size")
        if isinstance(s, (list, tuple)):
            s = s[0]
        ncls = model.config["num_class_embeds"]
    blas = None
    for b in a.batch:
        x = torch.randn(b, c, s, s, generator=g)
        t = torch.randint(0, 1000, (b,), generator=g, dtype=torch.int64)
        y = torch.randint(0, ncls, (b,), generator=g, dtype=torch.int64) if ncls else None
        with torch.no_grad():
            for _ in range(a.warmup):
                model(x, t, y)
            times, cpu = [], []
            start = time.perf_counter()
            while len(times) < a.iters or time.perf_counter() - start < a.min_seconds:
                t0, c0 = time.perf_counter(), time.process_time()
                model(x, t, y)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        if blas is None:
            blas = blas_summary(torch)
        med = statistics.median(times)
        print(json.dumps({
            "model": name, "class": cfg["_class_name"], "batch": b, "seconds_per_forward": med,
            "seconds_mean": statistics.fmean(times), "iterations": len(times), "images_per_second": b / med,
            "cpu_seconds_per_forward": statistics.median(cpu),
            "threads": a.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "torch": torch.__version__, "blas": blas, "cpu": cpu_name(), "cores": os.cpu_count()}), flush=True)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.make_model:
        make_models(a.make_model)
        return
    # Before torch (and through it OpenBLAS / OpenMP) is loaded: pin both thread pools to --threads.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    if a.omp_wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy
    run_bench(a)


if __name__ == "__main__":
    main()
