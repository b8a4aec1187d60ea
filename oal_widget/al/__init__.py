"""Active learning: probabilities -> scores -> an order of the images to ask about.

Pure numpy; knows nothing of widgets or TensorFlow.
"""
