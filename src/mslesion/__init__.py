"""mslesion: multiple sclerosis lesion segmentation in brain MRI.

Data flows one way: io (load) -> preprocess -> models -> infer -> postprocess -> evaluate -> report,
all standing on `space` (grid, templates, boxes, SimpleITK bridge); tests/test_import_layers.py keeps it so.
`import mslesion` stays light: heavy libraries are imported inside the functions that need them.
"""

__version__ = "0.1.0"
