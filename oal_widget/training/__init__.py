"""The training thread and everything it does with TensorFlow (imported lazily).

Knows nothing of widgets.
"""
