"""Pure functions behind the lab's views: arrays/tensors in, numpy images or plotly figures out.

No UI code lives here: `app/` wires these functions to Gradio components. One view per module:
`image_io` (robust decoding of uploads), `forward` (one analysis forward pass), `predict`,
`offsets` (SRM, METHOD.md §1), `features` (PCA pictures), `attention` (CRM, METHOD.md §1),
`bane` (BANE sampling record, METHOD.md §2), `colormaps` (scalar → colour).
"""
