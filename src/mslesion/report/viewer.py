"""An interactive slice viewer inside report.html: NiiVue (WebGL) with the images embedded as base64 NIfTI.

The NiiVue bundle ships in `assets/` (pinned version, its BSD-2-Clause licence beside it) and
is inlined into the page, so a report opens offline from any folder or USB stick. Images are
block-averaged to about the 1 mm working resolution and stored as gzip-compressed NIfTI of
256 grey levels (masks: block maximum) with a fresh header: only voxels and the affine, never a
field of the input's header (DICOM-derived names, IDs or dates cannot reach the page).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

NIIVUE_VERSION = "0.69.0"
ASSETS = Path(__file__).parent / "assets"
BUNDLE = ASSETS / f"niivue-{NIIVUE_VERSION}.umd.min.js"
TARGET_MM = 1.0
MAX_VOXELS = 224**3  # a larger grid is strided further, keeping each embedded image to a few MB
SLICE_TYPES = {"Axial": 0, "Coronal": 1, "Sagittal": 2, "Multiplanar": 3}


@dataclass(frozen=True)
class Layer:
    """One embedded volume: a grey-level image (`label` shown in the contrast menu) or the lesion mask."""

    label: str
    data: str  # base64 of a .nii.gz
    is_mask: bool = False


@dataclass(frozen=True)
class Panel:
    """One canvas: its title and layers (grey images first, the mask last)."""

    title: str
    layers: tuple[Layer, ...]


def strides(
    spacing: tuple[float, ...], shape: tuple[int, ...], target_mm: float = TARGET_MM, max_voxels: int = MAX_VOXELS
) -> tuple[int, ...]:
    """Per-axis integer block sizes that bring voxels up to about `target_mm` and the grid under `max_voxels`."""
    step = [max(1, int(np.floor(target_mm / s + 1e-6))) for s in spacing]
    while np.prod([int(np.ceil(n / k)) for n, k in zip(shape, step)]) > max_voxels:
        step = [k + 1 for k in step]
    return tuple(step)


def downsample(array: np.ndarray, affine: np.ndarray, step: tuple[int, ...], is_mask: bool) -> tuple[np.ndarray, np.ndarray]:
    """Block mean (images) or block maximum (masks) over `step` voxels, with the affine of the block centres."""
    array = np.asarray(array)
    if all(k == 1 for k in step):
        return array, np.asarray(affine, dtype=float)
    pad = [(0, (-n) % k) for n, k in zip(array.shape, step)]
    padded = np.pad(array.astype(np.float32), pad, mode="edge")
    blocks = padded.reshape([d for n, k in zip(padded.shape, step) for d in (n // k, k)])
    reduced = blocks.max(axis=(1, 3, 5)) if is_mask else blocks.mean(axis=(1, 3, 5))
    scale = np.diag([*step, 1]).astype(float)
    scale[:3, 3] = (np.asarray(step) - 1) / 2.0
    return reduced, np.asarray(affine, dtype=float) @ scale


def display_levels(array: np.ndarray) -> np.ndarray:
    """The image ready for 256 grey levels: NaN as 0, its brightest 0.05% of non-zero voxels clipped (stray hot voxels).

    256 levels (uint8, set in `nifti_base64`) are what a screen shows, and halve the embedded size against int16 (noise in
    the low bits does not compress); the header's scl_slope/scl_inter give values back in the
    input's units, to within range/255.
    """
    values = np.nan_to_num(np.asarray(array, dtype=np.float32))
    nonzero = values[values != 0]
    lo = float(values.min()) if values.size else 0.0
    hi = float(np.percentile(nonzero, 99.95)) if nonzero.size else lo
    return np.clip(values, lo, hi if hi > lo else lo + 1.0)


def nifti_base64(array: np.ndarray, affine: np.ndarray, is_mask: bool) -> str:
    """A gzip-compressed NIfTI-1 of `array` as base64: a new header, uint8 (images with a scale factor, `display_levels`)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    if is_mask:
        image = nib.Nifti1Image(np.asarray(array).astype(np.uint8), affine, header)
    else:
        image = nib.Nifti1Image(display_levels(array), affine, header)
        image.set_data_dtype(np.uint8)  # nibabel picks scl_slope/scl_inter; NiiVue applies them
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return base64.b64encode(gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)).decode("ascii")


def layers_for(images: dict[str, tuple[np.ndarray, np.ndarray]], mask: np.ndarray, mask_affine: np.ndarray) -> tuple[Layer, ...]:
    """Grey-level layers for each (array, affine) of `images`, then the mask, each downsampled to the working resolution."""
    import nibabel as nib

    layers = []
    for label, (array, affine) in images.items():
        step = strides(tuple(nib.affines.voxel_sizes(np.asarray(affine, dtype=float))), np.shape(array))
        small, small_affine = downsample(array, affine, step, is_mask=False)
        layers.append(Layer(label, nifti_base64(small, small_affine, is_mask=False)))
    step = strides(tuple(nib.affines.voxel_sizes(np.asarray(mask_affine, dtype=float))), np.shape(mask))
    small, small_affine = downsample(np.asarray(mask) > 0, mask_affine, step, is_mask=True)
    layers.append(Layer("Lesions", nifti_base64(small > 0, small_affine, is_mask=True), is_mask=True))
    return tuple(layers)


@lru_cache(maxsize=1)
def niivue_script() -> str:
    """The NiiVue bundle as ASCII JavaScript (its few non-ASCII characters, all inside string literals, as escapes)."""
    text = BUNDLE.read_text(encoding="utf-8")
    return re.sub(r"[^\x00-\x7f]", lambda m: _js_escape(m.group()), text)


def _js_escape(char: str) -> str:
    """A JavaScript escape of one character: \\uXXXX (valid in strings, templates and regular expressions), or \\u{...} beyond it."""
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\u{{{code:x}}}"


def _json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element ("</" cannot close it)."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


VIEWER_CSS = """
.viewer-controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;font-size:13px;margin:4px 0 8px}
.viewer-controls button{font-size:13px;padding:3px 9px;border:1px solid #9aa5b8;border-radius:4px;background:#f4f6fa;cursor:pointer}
.viewer-controls button.on{background:#1d3557;color:#fff}
.viewer-panels{display:flex;gap:8px}
.viewer-panel{flex:1;min-width:0}
.viewer-panel h3{font-size:14px;margin:2px 0 4px}
.viewer-box{position:relative;width:100%;height:460px;background:#000;border-radius:4px;overflow:hidden}
.viewer-box canvas{position:absolute;left:0;top:0;width:100%;height:100%;display:block}
.viewer-pos{font-family:monospace;font-size:12px;color:#1d2330;min-height:1.3em}
tr.lesion-row{cursor:pointer} tr.lesion-row:hover{background:#eef5ff} tr.lesion-row.picked{background:#dbeafe}
@media print{.viewer{display:none}}
"""

CONTROLLER_JS = r"""
(function(){
  var cfg = JSON.parse(document.getElementById('mslesion-viewer-data').textContent);
  var state = {viewers: [], ready: false, error: null};
  window.mslesionViewer = state;
  function fmt(mm){ return Array.from(mm).slice(0,3).map(function(v){return v.toFixed(1);}).join(', '); }
  state.crosshairMM = function(i){ var nv = state.viewers[i || 0]; return Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0,3); };
  function show(i, loc){
    var el = document.getElementById('viewer-pos-' + i);
    if (!el) return;
    var values = (loc.values || []).map(function(v){
      var label = v.name.replace(/\.nii\.gz$/, '');
      if (label === 'Lesions') return v.value > 0 ? 'in a lesion' : 'no lesion';
      return label + ' ' + (Math.abs(v.value) < 1e4 ? v.value.toPrecision(4) : v.value.toFixed(0));
    });
    el.textContent = 'crosshair (' + fmt(state.crosshairMM(i)) + ') mm RAS' + (values.length ? ' \u00b7 ' + values.join(' \u00b7 ') : '');
  }
  state.goto = function(mm){
    state.viewers.forEach(function(nv, i){
      nv.scene.crosshairPos = nv.mm2frac(mm);
      nv.updateGLVolume(); nv.drawScene(); nv.createOnLocationChange();
    });
  };
  function each(f){ state.viewers.forEach(f); }
  async function start(){
    if (typeof niivue === 'undefined') throw new Error('NiiVue bundle missing');
    for (var i = 0; i < cfg.panels.length; i++){
      var panel = cfg.panels[i];
      var nv = new niivue.Niivue({backColor:[0,0,0,1], crosshairColor:[0.1,1,0.3,1], crosshairWidth:1, isRadiologicalConvention:true,
                                 dragAndDropEnabled:false, isSliceMM:true, logLevel:'error', loadingText:'', show3Dcrosshair:true});
      await nv.attachToCanvas(document.getElementById('viewer-canvas-' + i));
      for (var j = 0; j < panel.layers.length; j++){
        var layer = panel.layers[j];
        var opts = {base64: layer.data, name: layer.label + '.nii.gz'};
        if (layer.mask){ opts.colormap = 'red'; opts.opacity = cfg.opacity; opts.cal_min = 0.5; opts.cal_max = 1; }
        else { opts.colormap = 'gray'; opts.opacity = j === 0 ? 1 : 0; }
        var img = await niivue.NVImage.loadFromBase64(opts);
        img.mslesionLabel = layer.label;
        nv.addVolume(img);
      }
      (function(k){ nv.onLocationChange = function(loc){ show(k, loc); }; })(i);
      nv.setSliceType(cfg.sliceType);
      state.viewers.push(nv);
    }
    if (state.viewers.length > 1){
      var sync = {crosshair:true, zoomPan:true, sliceType:true};
      each(function(nv){ nv.broadcastTo(state.viewers.filter(function(o){ return o !== nv; }), sync); });
    }
    wire();
    each(function(nv){ nv.createOnLocationChange(); });
    state.ready = true;
  }
  function wire(){
    document.querySelectorAll('[data-slice-type]').forEach(function(b){
      b.addEventListener('click', function(){
        var t = parseInt(b.getAttribute('data-slice-type'), 10);
        each(function(nv){ nv.setSliceType(t); });
        document.querySelectorAll('[data-slice-type]').forEach(function(o){ o.classList.toggle('on', o === b); });
      });
    });
    var toggle = document.getElementById('viewer-mask'), opacity = document.getElementById('viewer-opacity');
    function applyMask(){
      var a = toggle.checked ? parseFloat(opacity.value) : 0;
      each(function(nv){ nv.volumes.forEach(function(v, k){ if (v.mslesionLabel === 'Lesions') nv.setOpacity(k, a); }); });
    }
    toggle.addEventListener('change', applyMask); opacity.addEventListener('input', applyMask);
    var contrast = document.getElementById('viewer-contrast');
    if (contrast) contrast.addEventListener('change', function(){
      each(function(nv){
        var target = nv.volumes.find(function(v){ return v.mslesionLabel === contrast.value; });
        if (!target) return;
        nv.volumes.forEach(function(v){ if (v.mslesionLabel !== 'Lesions') v.opacity = v === target ? 1 : 0; });
        nv.moveVolumeToBottom(target); nv.updateGLVolume();
      });
    });
    var reset = document.getElementById('viewer-window-reset');
    if (reset) reset.addEventListener('click', function(){
      each(function(nv){ nv.volumes.forEach(function(v){ if (v.mslesionLabel !== 'Lesions'){ v.cal_min = v.robust_min; v.cal_max = v.robust_max; } }); nv.updateGLVolume(); });
    });
    document.querySelectorAll('tr.lesion-row').forEach(function(row){
      function pick(){
        var mm = row.getAttribute('data-mm').split(',').map(parseFloat);
        document.querySelectorAll('tr.lesion-row.picked').forEach(function(o){ o.classList.remove('picked'); });
        row.classList.add('picked');
        state.goto(mm);
        document.getElementById('viewer').scrollIntoView({block:'nearest'});
      }
      row.addEventListener('click', pick);
      row.addEventListener('keydown', function(e){ if (e.key === 'Enter' || e.key === ' '){ e.preventDefault(); pick(); } });
    });
  }
  start().catch(function(err){
    state.error = String(err);
    var el = document.getElementById('viewer-pos-0');
    if (el) el.textContent = 'The viewer could not start (' + err + '); the slices above remain.';
  });
})();
"""


def viewer_section(panels: list[Panel], opacity: float = 0.6) -> str:
    """The viewer's HTML (controls, one canvas per panel, the data as JSON); `viewer_scripts` must follow in the page."""
    greys = [layer.label for layer in panels[0].layers if not layer.is_mask] if panels else []
    buttons = "".join(
        f'<button type="button" data-slice-type="{t}"{" class=on" if name == "Multiplanar" else ""}>{name}</button>'
        for name, t in SLICE_TYPES.items()
    )
    contrast = (
        '<label>Image <select id="viewer-contrast">' + "".join(f"<option>{escape(g)}</option>" for g in greys) + "</select></label>"
        if len(greys) > 1
        else ""
    )
    controls = (
        f'<div class="viewer-controls">{buttons}{contrast}'
        '<label><input type="checkbox" id="viewer-mask" checked> Lesion overlay</label>'
        f'<label>Opacity <input type="range" id="viewer-opacity" min="0" max="1" step="0.05" value="{opacity}"></label>'
        '<button type="button" id="viewer-window-reset">Reset window</button></div>'
    )
    canvases = "".join(
        f'<div class="viewer-panel"><h3>{escape(p.title)}</h3><div class="viewer-box"><canvas id="viewer-canvas-{i}"></canvas></div>'
        f'<div class="viewer-pos" id="viewer-pos-{i}"></div></div>'
        for i, p in enumerate(panels)
    )
    config = {
        "sliceType": SLICE_TYPES["Multiplanar"],
        "opacity": opacity,
        "panels": [{"title": p.title, "layers": [{"label": x.label, "data": x.data, "mask": x.is_mask} for x in p.layers]} for p in panels],
    }
    note = (
        '<p class="note">Click a slice to move the crosshair; scroll to change slice; right-drag to change the grey-level '
        "window; click a row of the lesion table to jump to that lesion. Radiological convention (patient's right on the left). "
        f"Images shown at about {TARGET_MM:g} mm. Viewer: NiiVue {NIIVUE_VERSION} (BSD-2-Clause), embedded; works offline.</p>"
    )
    return (
        f'<style>{VIEWER_CSS}</style><div class="viewer" id="viewer">{controls}<div class="viewer-panels">{canvases}</div>{note}</div>'
        f'<script type="application/json" id="mslesion-viewer-data">{_json_for_script(config)}</script>'
    )


def viewer_scripts() -> str:
    """The NiiVue bundle and the controller, to end the page's body."""
    return f"<script>{niivue_script()}</script><script>{CONTROLLER_JS}</script>"


def lesion_mm(row: dict[str, Any]) -> str | None:
    """A lesion row's centroid as "x,y,z" world mm (the `data-mm` of its table row), or None without one."""
    try:
        return ",".join(f"{float(row[f'centroid_{a}_mm']):.2f}" for a in "xyz")
    except (KeyError, TypeError, ValueError):
        return None
