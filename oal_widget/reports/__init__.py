"""What comes out of the labels: exports and imports, diagnostics, the learning-curve forecast.

Knows nothing of widgets; imports TensorFlow nowhere.
"""
