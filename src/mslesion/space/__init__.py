"""The bottom layer: where voxels are in the world, and the MNI templates every stage shares.

grid       the FSL MNI152 1 mm grid, which is the model's working grid
boxes      bounding boxes of masks, boxes around points, crops put back on the grid
priors     MNI152 2009a tissue maps and lesion-location regions on that grid
templates  the MNI152 2009a template and brain mask as registration targets
sitkio     the bridge between NumPy arrays with RAS affines and SimpleITK images (LPS)

It imports nothing of the toolkit above `mslesion.errors`, and nothing heavy at import
time: SimpleITK and nilearn load when a function needs them.
"""
