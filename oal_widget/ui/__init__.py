"""The notebook panel: ipywidgets and ipyevents live here and nowhere else."""
