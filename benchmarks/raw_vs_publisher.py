"""Segment the held-out real case (lesjak-mni/patient07) as published (preprocessed by the data's publisher)
and again through our own raw-scan preprocessing (--preprocess yes); same default model, same metrics.

    MSLESION_SHARED_DATA=../shared/data .venv/bin/python benchmarks/raw_vs_publisher.py

Writes benchmarks/results/raw_vs_publisher_patient07.json.
"""

import json
import os
import tempfile
import time
from pathlib import Path

from mslesion.evaluate.case_metrics import evaluate_case
from mslesion.io.volume import load_volume
from mslesion.pipeline import segment

case=Path(os.environ.get('MSLESION_SHARED_DATA', '../shared/data')) / 'lesjak-mni' / 'patient07'; ref=load_volume(case/'lesion.nii.gz')
rows=[]
for mode in ['no','yes']:
    with tempfile.TemporaryDirectory() as tmp:
        t=time.time(); segment({'FLAIR':case/'FLAIR.nii.gz','T1':case/'T1.nii.gz'}, Path(tmp)/'o', flips=2, preprocess=mode); s=time.time()-t
        pred=load_volume(Path(tmp)/'o'/'lesion_mask.nii.gz').array>0
    m=evaluate_case(pred, ref.array>0, ref.spacing)
    rows.append({'preprocess':mode, **{k:round(float(m[k]),3) for k in ['dice','msseg_lesion_f1','ltpr','lfpr','ppv','tpr','n_pred_lesions']}, 'seconds':round(s,1)})
    print(rows[-1], flush=True)
json.dump(rows, open('benchmarks/results/raw_vs_publisher_patient07.json','w'), indent=2)
