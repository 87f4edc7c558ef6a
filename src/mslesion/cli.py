"""The `mslesion` command: one typer app, thin commands, heavy imports inside them.

Every command turns `InputError` into a one-line `error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mslesion.errors import InputError

app = typer.Typer(
    name="mslesion",
    help="Multiple sclerosis lesion segmentation in brain MRI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report bad input as one line and exit 2; never a traceback for the user's mistakes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper


@app.command()
@_friendly_errors
def evaluate(
    pred: Annotated[Path, typer.Option(help="Predicted mask: a file, a folder of masks, or per-case folders.")],
    ref: Annotated[Path, typer.Option(help="Reference mask: a file, a folder, or a dataset (manifest/BIDS/nnU-Net).")],
    out: Annotated[Path, typer.Option(help="Output folder for metrics.csv and summary.json.")],
    connectivity: Annotated[int, typer.Option(help="Lesion connectivity for ISBI lesion-wise metrics: 6, 18 or 26.")] = 26,
    task: Annotated[str, typer.Option(help="'lesions' (all metrics) or 'new-lesions' (the MSSEG-2 table).")] = "lesions",
    empty_dice: Annotated[str, typer.Option(help="Dice when both masks are empty: 'nan' or 'one'.")] = "nan",
    threshold: Annotated[
        Optional[float], typer.Option(help="Binarise --pred probability maps at value > this (without it, --pred must hold only 0 and 1).")
    ] = None,
) -> None:
    """Compare predicted lesion masks with references; write metrics.csv and summary.json."""
    from mslesion.evaluate.runner import run_evaluation

    summary_text = run_evaluation(pred, ref, out, connectivity=connectivity, task=task, empty_dice=empty_dice, threshold=threshold)
    typer.echo(summary_text)


@app.command()
@_friendly_errors
def compare(
    a: Annotated[Path, typer.Argument(help="metrics.csv of method A.")],
    b: Annotated[Path, typer.Argument(help="metrics.csv of method B.")],
    metric: Annotated[str, typer.Option(help="Column to compare, e.g. dice or msseg_lesion_f1.")] = "dice",
    out: Annotated[Optional[Path], typer.Option(help="Also write the result as JSON here.")] = None,
) -> None:
    """Paired two-sided Wilcoxon signed-rank test between two methods' per-case scores."""
    from mslesion.evaluate.runner import run_comparison

    typer.echo(run_comparison(a, b, metric=metric, out=out))


@app.command()
@_friendly_errors
def synth(
    out: Annotated[Path, typer.Option(help="Output dataset folder.")],
    n: Annotated[int, typer.Option(help="Number of subjects (or pairs with --longitudinal).")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same dataset.")] = 0,
    sites: Annotated[int, typer.Option(help="Number of simulated scanner sites.")] = 1,
    longitudinal: Annotated[bool, typer.Option(help="Make baseline/follow-up pairs with new lesions.")] = False,
    lesion_masks: Annotated[Optional[Path], typer.Option(help="Folder of real MNI lesion masks to sample lesions from.")] = None,
    resolution: Annotated[float, typer.Option(help="Voxel size in mm of the output grid (1 = MNI 1 mm).")] = 1.0,
    bids: Annotated[bool, typer.Option(help="Write a BIDS dataset instead of per-case folders.")] = False,
    deform: Annotated[bool, typer.Option(help="Random smooth deformation of the anatomy per subject.")] = True,
    dawm: Annotated[
        float,
        typer.Option(help="Add unlabelled dirty-appearing white matter of strength up to this (0 = none, 0.5 = strong) to each subject."),
    ] = 0.0,
    implant_into: Annotated[
        Optional[Path],
        typer.Option(
            help="A real case folder on the MNI 1 mm grid: draw each --lesion-masks mask into it (one case per mask) instead of making phantoms."
        ),
    ] = None,
    pairs_from: Annotated[
        Optional[Path],
        typer.Option(
            help="A real case folder on the MNI 1 mm grid: make --n Draw-and-Erase baseline/follow-up pairs from it (new lesions drawn from --lesion-masks, some of its own erased)."
        ),
    ] = None,
) -> None:
    """Generate synthetic MS phantoms: multi-contrast images, lesion and brain masks, manifest."""
    if pairs_from is not None:
        if implant_into is not None or longitudinal or bids:
            raise InputError(None, "--pairs-from cannot be combined with --implant-into, --longitudinal or --bids")
        if lesion_masks is None:
            raise InputError(pairs_from, "--pairs-from needs --lesion-masks (the shapes of the new lesions)")
        from mslesion.synth.draw_erase import write_draw_erase_pairs

        manifest = write_draw_erase_pairs(pairs_from, lesion_masks, out, n=n, seed=seed)
        typer.echo(f"wrote {n} Draw-and-Erase pair{'s' if n != 1 else ''} from {pairs_from.name} to {out} ({manifest.name})")
        return
    from mslesion.synth import make_dataset

    if implant_into is not None:
        from mslesion.synth.implant import write_implanted_cases

        if longitudinal or bids:
            raise InputError(None, "--implant-into cannot be combined with --longitudinal or --bids")
        if lesion_masks is None:
            raise InputError(implant_into, "--implant-into needs --lesion-masks (the lesions to draw)")
        written = write_implanted_cases(implant_into, lesion_masks, out, seed=seed)
        typer.echo(f"wrote {len(written)} cases with lesions drawn into {implant_into.name} to {out}")
        return
    if n < 1 or sites < 1:
        raise InputError(None, "--n and --sites must be at least 1")
    if lesion_masks is not None and not lesion_masks.is_dir():
        raise InputError(lesion_masks, "lesion mask folder not found")
    manifest = make_dataset(
        out,
        n=n,
        seed=seed,
        n_sites=sites,
        longitudinal=longitudinal,
        lesion_masks_dir=lesion_masks,
        resolution_mm=resolution,
        layout="bids" if bids else "folders",
        deform=deform,
        dawm=dawm,
    )
    typer.echo(f"wrote {n} {'pairs' if longitudinal else 'subjects'} to {out} ({manifest.name})")


@app.command()
@_friendly_errors
def train(
    config: Annotated[Path, typer.Option(help="Training YAML (see configs/).")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log, curves, model.")],
    resume: Annotated[bool, typer.Option(help="Continue exactly from the run folder's last checkpoint.")] = False,
    time_budget: Annotated[Optional[float], typer.Option(help="Stop after this many minutes (at an epoch end).")] = None,
) -> None:
    """Train a segmentation model on any dataset the toolkit reads (torchrun for several processes)."""
    from mslesion.train.run import run_training

    summary = run_training(config, out, resume=resume, time_budget_minutes=time_budget)
    typer.echo(" ".join(f"{k}={v}" for k, v in summary.items()))


@app.command()
@_friendly_errors
def benchmark(
    config: Annotated[Path, typer.Option(help="Benchmark YAML: datasets, methods, protocol (see configs/benchmarks/).")],
    out: Annotated[Path, typer.Option(help="Output folder: runs, per-case metrics, tables, plots, summary.md.")],
    resume: Annotated[bool, typer.Option(help="Continue a stopped benchmark: finished folds are skipped.")] = False,
) -> None:
    """Train, segment and evaluate several methods under one protocol; write the papers' tables."""
    from mslesion.benchmark.run import run_benchmark

    typer.echo(run_benchmark(config, out, resume=resume))


BACKEND_HELP = (
    "What runs the network: 'auto' (OpenVINO when installed, in bfloat16 where the CPU has it: the fastest at equal masks, "
    "benchmarks/results/speed.md; else PyTorch), 'torch', 'openvino' or 'onnxruntime'."
)
FLIPS_HELP = (
    "Test-time flips: 1 (none), 2 (+left-right) or 4 (all axes); default: the model card's test_time_flips "
    "(the shipped model's postprocessing was chosen with them)."
)
BRAIN_EXTRACTION_HELP = (
    "Raw scans: 'hdbet' (the trained HD-BET network, any contrast and scanner) or "
    "'template' (MNI brain mask through the registration, refined by intensity)."
)


def _contrast_images(flair: Path, t1: Path | None, t2: Path | None, pd: Path | None) -> dict[str, Path]:
    """The contrasts given on the command line, by canonical name."""
    return {name: path for name, path in (("FLAIR", flair), ("T1", t1), ("T2", t2), ("PD", pd)) if path is not None}


@app.command()
@_friendly_errors
def segment(
    flair: Annotated[Path, typer.Option(help="FLAIR image: NIfTI file or DICOM series folder.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    t1: Annotated[Optional[Path], typer.Option(help="T1-weighted image (NIfTI or DICOM folder).")] = None,
    t2: Annotated[Optional[Path], typer.Option(help="T2-weighted image.")] = None,
    pd: Annotated[Optional[Path], typer.Option(help="PD-weighted image.")] = None,
    model: Annotated[str, typer.Option(help="Shipped model name or model folder.")] = "default",
    brain_mask: Annotated[Optional[Path], typer.Option(help="Brain mask on the FLAIR grid (else computed).")] = None,
    flips: Annotated[Optional[int], typer.Option(help=FLIPS_HELP)] = None,
    preprocess: Annotated[
        str, typer.Option(help="'auto': raw scans (skull, other grids, thick slices) are preprocessed first; 'yes': always; 'no': never.")
    ] = "auto",
    brain_extraction: Annotated[str, typer.Option(help=BRAIN_EXTRACTION_HELP)] = "hdbet",
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
) -> None:
    """Segment MS lesions: lesion mask, probabilities, lesions.csv, summary.json and report.html on the FLAIR grid."""
    from mslesion.pipeline import segment as run_segment

    images = _contrast_images(flair, t1, t2, pd)
    result = run_segment(
        images,
        out,
        model=model,
        brain_mask=brain_mask,
        flips=flips,
        preprocess=preprocess,
        brain_extraction=brain_extraction,
        backend=backend,
    )
    typer.echo(f"{result.lesion_count} lesions, {result.total_volume_ml:.2f} mL -> {result.out}")


@app.command("new-lesions")
@_friendly_errors
def new_lesions(
    baseline_flair: Annotated[Path, typer.Option(help="Baseline FLAIR: NIfTI file or DICOM series folder.")],
    followup_flair: Annotated[Path, typer.Option(help="Follow-up FLAIR: results land on its grid.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    baseline_t1: Annotated[Optional[Path], typer.Option(help="Baseline T1-weighted image.")] = None,
    followup_t1: Annotated[Optional[Path], typer.Option(help="Follow-up T1-weighted image.")] = None,
    model: Annotated[
        str,
        typer.Option(
            help="'grown-subtraction' (the default: it wins on the real Lesjak pairs, benchmarks/results/change_lopo.md; "
            "subtraction candidates grown into the whole follow-up lesion, classed new or enlarging), "
            "'subtraction', 'probability-change' (the single-visit model on each visit), the shipped network 'new-lesions', "
            "or a model folder."
        ),
    ] = "grown-subtraction",
    flips: Annotated[Optional[int], typer.Option(help=FLIPS_HELP)] = None,
    preprocess: Annotated[
        str,
        typer.Option(help="'auto': preprocess unless both visits are skull-stripped on the follow-up grid; 'yes': always; 'no': never."),
    ] = "auto",
) -> None:
    """New lesions between two visits: new_lesion_mask, probabilities, new_lesions.csv, summary.json, report.html on the follow-up grid."""
    from mslesion.new_lesions import detect_new_lesions

    baseline = _contrast_images(baseline_flair, baseline_t1, None, None)
    followup = _contrast_images(followup_flair, followup_t1, None, None)
    result = detect_new_lesions(baseline, followup, out, model=model, flips=flips, preprocess=preprocess)
    if result.new_lesion_count == 0:
        typer.echo(f"No new lesions -> {result.out}")
    else:
        typer.echo(f"{result.new_lesion_count} new lesion(s), {result.total_volume_ml:.3f} mL -> {result.out}")


@app.command()
@_friendly_errors
def ensemble(
    models: Annotated[list[Path], typer.Argument(help="Two or more trained model folders of one architecture, inputs and patch size.")],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble model (model.json + model.safetensors).")],
) -> None:
    """Join trained models into one model that averages their lesion probabilities (use it with --model)."""
    from mslesion.models.store import combine_models

    if out.exists() and any(out.iterdir()):
        raise InputError(out, "exists and is not empty: choose a new folder for the ensemble")
    card = combine_models(list(models), out)
    typer.echo(f"{out}: ensemble of {card.params['members']} {card.params['member_architecture']} models")


# Options shared by the cohort commands: where their tasks run (`mslesion.cohort.engines`).
EngineOpt = Annotated[
    str,
    typer.Option(
        help="'local': processes on this machine; 'ray': a Ray cluster (Ray comes with make install, or with mslesion's 'cluster' extra)."
    ),
]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option(help="Parallel workers, each reading the model once (local default 1; ray default: as many as the cluster fits)."),
]
AddressOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Ray only: 'auto' joins the cluster this machine belongs to, ray://HOST:10001 a remote one; unset: a Ray on this machine."
    ),
]
CpusOpt = Annotated[
    Optional[float], typer.Option(help="CPUs (and torch threads) per worker (local default: this machine's cores shared; ray default 1).")
]
GpusOpt = Annotated[float, typer.Option(help="GPUs per worker (ray: reserved on the cluster; the model runs on the GPU).")]
RetriesOpt = Annotated[int, typer.Option(help="Runs of a task after its worker was lost (killed, out of memory, node gone).")]
CheckpointOpt = Annotated[int, typer.Option(help="Rewrite cohort.csv and failures.csv after every N completed tasks (and at the end).")]


def _engine(engine: str, workers: int | None, address: str | None, cpus: float | None, gpus: float, retries: int) -> Any:
    from mslesion.cohort.engines import EngineOptions

    return EngineOptions(engine, workers, address, cpus, gpus, retries)  # type: ignore[arg-type]  # checked there


def _cohort_exit(result: Any, verb: str) -> None:
    """The cohort's one-line tally, each failure on stderr, exit 1 when any failed."""
    typer.echo(
        f"{len(result.done)} {verb}, {len(result.skipped)} already done, {len(result.failed)} failed -> "
        + ", ".join(str(p) for p in (result.table, result.failures, result.page) if p is not None)
    )
    for name, attempts in result.retried.items():
        typer.echo(f"retried: {name} ran {attempts} times (lost worker)", err=True)
    for name, reason in result.failed.items():
        typer.echo(f"failed: {name}: {reason}", err=True)
    if result.failed:
        raise typer.Exit(1)


@app.command("segment-dataset")
@_friendly_errors
def segment_dataset(
    bids_dir: Annotated[Path, typer.Argument(help="BIDS dataset: sub-*/[ses-*/]anat/*_FLAIR.nii.gz (+ T1w, T2w, PD).")],
    out: Annotated[Path, typer.Option(help="BIDS-derivatives output folder (cohort.csv, failures.csv, cohort.html at its top).")],
    model: Annotated[str, typer.Option(help="Shipped model name or model folder.")] = "default",
    engine: EngineOpt = "local",
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    cpus_per_task: CpusOpt = None,
    gpus_per_task: GpusOpt = 0.0,
    max_retries: RetriesOpt = 2,
    checkpoint_every: CheckpointOpt = 10,
    flips: Annotated[Optional[int], typer.Option(help=FLIPS_HELP)] = None,
) -> None:
    """Segment every session of a BIDS dataset; skip sessions already done, list failures (exit 1 if any)."""
    from mslesion.cohort import segment_dataset as run_dataset

    options = _engine(engine, workers, address, cpus_per_task, gpus_per_task, max_retries)
    result = run_dataset(bids_dir, out, model=model, engine=options, checkpoint_every=checkpoint_every, flips=flips)
    _cohort_exit(result, "segmented")


@app.command("new-lesions-dataset")
@_friendly_errors
def new_lesions_dataset(
    bids_dir: Annotated[
        Path, typer.Argument(help="BIDS dataset with two or more sessions per subject: sub-*/ses-*/anat/*_FLAIR.nii.gz (+ T1w).")
    ],
    out: Annotated[Path, typer.Option(help="BIDS-derivatives output folder (cohort.csv and failures.csv at its top).")],
    model: Annotated[
        str,
        typer.Option(
            help="As `new-lesions --model`: 'grown-subtraction' (default), 'subtraction', 'probability-change', 'new-lesions' or a model folder."
        ),
    ] = "grown-subtraction",
    engine: EngineOpt = "local",
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    cpus_per_task: CpusOpt = None,
    gpus_per_task: GpusOpt = 0.0,
    max_retries: RetriesOpt = 2,
    checkpoint_every: CheckpointOpt = 10,
    flips: Annotated[Optional[int], typer.Option(help=FLIPS_HELP)] = None,
) -> None:
    """New lesions between every two consecutive sessions of each subject; skip pairs already done, list failures (exit 1 if any)."""
    from mslesion.cohort import new_lesions_dataset as run_pairs

    options = _engine(engine, workers, address, cpus_per_task, gpus_per_task, max_retries)
    result = run_pairs(bids_dir, out, model=model, engine=options, checkpoint_every=checkpoint_every, flips=flips)
    _cohort_exit(result, "pairs done")


@app.command()
@_friendly_errors
def preprocess(
    flair: Annotated[Path, typer.Option(help="Raw FLAIR (NIfTI, any orientation and resolution, with skull).")],
    out: Annotated[Path, typer.Option(help="Output folder: images, brain_mask, transforms/, qc.json.")],
    t1: Annotated[Optional[Path], typer.Option(help="Raw T1-weighted image (registered to FLAIR here).")] = None,
    t2: Annotated[Optional[Path], typer.Option(help="Raw T2-weighted image.")] = None,
    pd: Annotated[Optional[Path], typer.Option(help="Raw PD-weighted image.")] = None,
    space: Annotated[str, typer.Option(help="'mni': the model's 1 mm MNI grid (skull-stripped); 'native': the FLAIR grid.")] = "mni",
    brain_extraction: Annotated[str, typer.Option(help=BRAIN_EXTRACTION_HELP)] = "hdbet",
) -> None:
    """Preprocess raw scans: reorient, N4, register (contrasts to FLAIR, FLAIR to MNI), brain mask, resample."""
    from mslesion.io.outdir import prepare_out
    from mslesion.preprocess.export import Space, write_preprocessed
    from mslesion.preprocess.raw import preprocess_raw

    if space not in {s.value for s in Space}:
        raise InputError(None, f"--space must be one of {[s.value for s in Space]}, not {space!r}")
    images = _contrast_images(flair, t1, t2, pd)
    prepare_out(out, images.values())  # a foreign or unwritable folder fails before the work
    result = preprocess_raw(images, brain_extraction=brain_extraction)
    write_preprocessed(result, out, space)  # warnings were logged by preprocess_raw
    typer.echo(f"brain {result.qc['brain_volume_ml']:.0f} mL, MNI NMI {result.qc['mni_registration']['nmi']:.3f} -> {out}")


@app.command()
@_friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo_out"),
    seed: Annotated[int, typer.Option(help="Seed of the embedded example.")] = 7,
) -> None:
    """Run the main job on an embedded example: a synthetic subject made on the fly."""
    from mslesion.demo import run_demo

    typer.echo(run_demo(out, seed=seed))


@app.command()
def methods() -> None:
    """List the methods `train`, `segment` and `new-lesions` accept, one line each."""
    from mslesion.models.registry import DESCRIPTIONS, UNTRAINED

    for name, text in {**DESCRIPTIONS, **UNTRAINED}.items():
        typer.echo(f"{name:18s} {text}")


@app.command()
def version() -> None:
    """Print the mslesion version."""
    from mslesion import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="mslesion")


if __name__ == "__main__":  # pragma: no cover
    main()  # typer ends the process itself (SystemExit with the command's code)
