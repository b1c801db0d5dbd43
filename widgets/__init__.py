"""ipywidgets and plotly components for the notebooks and the dashboard (import as taskq_widgets)."""
