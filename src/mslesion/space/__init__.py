"""The bottom layer: where voxels are in the world, and the MNI templates every stage shares.

grid       the FSL MNI152 1 mm grid, which is the model's working grid
boxes      bounding boxes of masks, boxes around points, crops put back on the grid
priors     MNI152 2009a tissue maps and lesion-location regions on that grid
templates  the MNI152 2009a template and brain mask as registration targets
sitkio     the bridge between NumPy arrays with RAS affines and SimpleITK images (LPS)

Every stage imports it; it imports nothing else of the toolkit (tests/test_import_layers.py
checks both). grid and boxes need only NumPy; sitkio and templates load SimpleITK, and
nilearn's templates are read on first use.
"""
