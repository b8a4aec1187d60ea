"""Images and labels on disk: finding and decoding images (pool), memory-mapped arrays (cache),
the label store.

Knows nothing of widgets or TensorFlow.
"""
