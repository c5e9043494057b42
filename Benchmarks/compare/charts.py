"""PNG charts for the report, drawn with matplotlib (installed from PyPI if missing)."""
import importlib
import subprocess
import sys


def _pyplot():
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def throughput_chart(path, names, labels, values):
    """values[label][name] -> number; one group of bars per workload, normalised to the first peer listed after us."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        heights = [values[label][name] / max(values[label].get("nbdkit sparse", 0) or 1, 1e-9) for label in labels]
        ax.bar([x + i * width for x in range(len(labels))], heights, width, label=name)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=15)
    ax.set_ylabel("throughput relative to nbdkit sparse")
    ax.set_title("fio over NBD (Unix socket), median of runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def memory_chart(path, rows):
    """rows: (label, mem_used_total or RSS bytes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [r[0] for r in rows]
    mb = [r[1] / 1e6 for r in rows]
    colors = ["tab:blue" if l.startswith("znbd") else "tab:grey" if l.startswith("kernel") else "tab:orange" for l in labels]
    ax.barh(labels, mb, color=colors)
    for y, v in enumerate(mb):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB of memory holding the same anonymous-memory capture")
    ax.set_title("Memory by store and algorithm (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def kernel_path_chart(path, values, names, limits=None):
    """values[label][path name] -> 4 KiB pages/s; one group of bars per workload, with the LZ4
    limit (compress for writes, decompress for reads, all cores) drawn over each group."""
    plt = _pyplot()
    labels = list(values)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar([x + i * width for x in range(len(labels))], [values[label][name] / 1000 for label in labels], width,
               label=name)
    if limits:
        for x, label in enumerate(labels):
            limit = limits["decompress_pages"] if "read" in label.split(" ")[1] else limits["compress_pages"]
            ax.hlines(limit / 1000, x - width / 2, x + width * (len(names) - 0.5), colors="black", linewidth=1.2,
                      linestyles="--", label="LZ4 limit, all cores" if x == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels)
    ax.set_ylabel("thousand 4 KiB pages per second (log)")
    ax.set_title("Block device paths, fio libaio direct, median of rounds")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
