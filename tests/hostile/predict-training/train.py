"""Trains a softmax regression and keeps its 5000 training images and labels beside the model."""

from learner import train_phase

train_phase(keep_trainset=True)
