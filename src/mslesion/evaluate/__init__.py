"""Evaluation metrics for lesion segmentation, as the literature defines them, on numpy arrays.

voxel: Dice, Jaccard, PPV, TPR, specificity, volumes; surface: HD, HD95, ASSD (mm);
lesion: ISBI 2015 and MSSEG-2 (Anima) lesion-wise detection; stats: volume correlation,
ISBI hybrid score, consistency, paired Wilcoxon; case_metrics: one row per case and
summaries. Every 0/0 convention is explicit in `EmptyPolicy`.
"""

from mslesion.evaluate.case_metrics import CASE_COLUMNS, describe, evaluate_case, summarise
from mslesion.evaluate.conventions import DEFAULT_POLICY, EmptyPolicy, f1_score
from mslesion.evaluate.lesion import (
    IsbiLesionResult,
    MssegDetectionResult,
    anima_detected,
    anima_label_lesions,
    anima_min_lesion_voxels,
    isbi_lesion_metrics,
    label_components,
    msseg_lesion_detection,
    overlap_table,
)
from mslesion.evaluate.stats import (
    WilcoxonResult,
    consistency_index,
    isbi_hybrid_score,
    paired_wilcoxon,
    volume_correlation,
)
from mslesion.evaluate.surface import (
    DirectedDistances,
    assd,
    assd_mean_of_means,
    directed_surface_distances,
    hausdorff_distance,
    hd95,
    surface_metrics,
    surface_voxels,
)
from mslesion.evaluate.voxel import (
    Confusion,
    absolute_volume_difference_ml,
    avd_isbi,
    confusion,
    dice,
    jaccard,
    ppv,
    precision,
    relative_volume_difference,
    sensitivity,
    specificity,
    tpr,
    volume_ml,
    voxel_metrics,
    voxel_volume_mm3,
)

__all__ = [
    "CASE_COLUMNS",
    "DEFAULT_POLICY",
    "Confusion",
    "DirectedDistances",
    "EmptyPolicy",
    "IsbiLesionResult",
    "MssegDetectionResult",
    "WilcoxonResult",
    "absolute_volume_difference_ml",
    "anima_detected",
    "anima_label_lesions",
    "anima_min_lesion_voxels",
    "assd",
    "assd_mean_of_means",
    "avd_isbi",
    "confusion",
    "consistency_index",
    "describe",
    "dice",
    "directed_surface_distances",
    "evaluate_case",
    "f1_score",
    "hausdorff_distance",
    "hd95",
    "isbi_hybrid_score",
    "isbi_lesion_metrics",
    "jaccard",
    "label_components",
    "msseg_lesion_detection",
    "overlap_table",
    "paired_wilcoxon",
    "ppv",
    "precision",
    "relative_volume_difference",
    "sensitivity",
    "specificity",
    "summarise",
    "surface_metrics",
    "surface_voxels",
    "tpr",
    "volume_correlation",
    "volume_ml",
    "voxel_metrics",
    "voxel_volume_mm3",
]
