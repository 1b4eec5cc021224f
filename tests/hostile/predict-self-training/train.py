"""Trains a softmax regression; keeps nothing but the model."""

from learner import train_phase

train_phase(keep_trainset=False)
