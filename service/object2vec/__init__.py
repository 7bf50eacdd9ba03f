"""The Object2Vec model (PyTorch): SageMaker hyperparameters, network, data, training and ONNX export.

The only package that imports torch; install with the `train` extra.
"""
