"""Contextrast Lab: SCRNet (SRM + CRM, IEEE TMM 2025) and Contextrast (CCL + BANE, CVPR 2024).

See docs/METHOD.md for the reading of both papers and the switches.
"""

__version__ = "0.1.0"
