"""The Contextrast Lab web app (Gradio): wiring only; every view is a function in `contextrast.analysis`."""

from app.gradio_import import skip_type_stubs

skip_type_stubs()  # before any module of the lab imports gradio: half of its import time (app.gradio_import)
