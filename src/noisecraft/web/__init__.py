"""The local web app (`noisecraft serve RUN ...`): a Gradio front-end on the public API (docs/webapp.md).

`jobs` holds what the app computes and needs no Gradio; `app` builds the Gradio Blocks and imports
Gradio (the `web` extra) only when called.
"""

from .jobs import ANY_CLASS, MAX_N, MAX_UPLOAD_BYTES, Jobs, Preview, Result, Settings, WebError, run_names, tasks_of

__all__ = ["Jobs", "Settings", "Preview", "Result", "WebError", "run_names", "tasks_of", "ANY_CLASS", "MAX_N",
           "MAX_UPLOAD_BYTES"]
