"""The model's contract with serving, torch-free: SageMaker's hyperparameter schema and the model directory.

Serving (api, encoders, drift, index) reads a model through this package only; service/object2vec, the one torch
user, trains and exports models that meet it.
"""
