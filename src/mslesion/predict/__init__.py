"""One predictor and one export for `segment` (one visit) and `new-lesions` (two), as nnU-Net has one
nnUNetPredictor and one export_prediction.

Read in this order:

- `model`: the model folder read once (`LoadedModel`);
- `inputs`: the scans read and checked, and whether they are ready for the model (`preprocessing_reason`);
- `geometry`: the way from the input grid to the model's grid, recorded on the way in (raw scans:
  preprocessing to the MNI working grid; ready scans on other voxels than the model's: resampling;
  ready scans on the model's voxels, regional models' MNI grid: nothing) and undone by one inverse,
  `Geometry.to_input`, as TorchIO's `Subject.get_inverse_transform`;
- `predictor`: the run's steps in order (`Predictor`: prepare, normalise + network, back to the
  input grid, lesions labelled once, locations), timed per stage (`mslesion.timing`);
- `export`: staged, atomic writing of images, lesion table, report and summary.json (with seconds_per_stage).

`pipeline.segment` and `new_lesions.detect_new_lesions` call these in the same order; they differ
only in how they stack the channels (one visit's contrasts; `baseline_X` / `followup_X`) and in
what their summary and report show. This package sits at the top layer beside them.
"""
