"""ipywidgets and plotly components for the notebooks and the dashboard (import as taskq_widgets).

The live dashboard lives in ``taskq_widgets.dashboard`` (``launch()``); its data, free of any
widget code, in ``taskq_widgets.frame``; its traitlets model and poller in
``taskq_widgets.model``.
"""
