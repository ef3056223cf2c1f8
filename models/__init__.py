"""crackq's ML model: ResNet50 crack classifier, transforms, training, checkpoints."""
