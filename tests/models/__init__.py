"""Tests of models/: network, numerics, serving, data, training, evaluation, backends."""
