"""The Contextrast Lab web app (Gradio): wiring only; every view is a function in `contextrast.analysis`."""
