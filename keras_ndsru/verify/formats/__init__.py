"""Formats in: ONNX graphs, VNN-LIB properties, Keras models, .nnet files."""
