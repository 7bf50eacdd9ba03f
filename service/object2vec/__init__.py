"""The Object2Vec model (PyTorch): network, data, training and ONNX export of model directories (service/model).

The only package that imports torch; install with the `train` extra.
"""
