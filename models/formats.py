"""The image file formats crackq reads, by Pillow name and by file suffix (no torch import)."""

# Every format a decoder here can read; a setting or a caller narrows it, never widens it.
PHOTO_FORMAT_NAMES = ("JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF")
# What cameras and drones write: the default of CRACKQ_IMAGE_FORMATS (BMP and GIF on request).
CAMERA_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "TIFF")
# What a folder scan picks up: the suffixes of all of those formats. Which of them decode is
# decided afterwards (CRACKQ_IMAGE_FORMATS), so a refused file is reported, not silently
# left out. Kept free of torch so the producer CLI starts in well under a second.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
