"""People that must not be seen: blurred copies of camera-trap images before they are shared or reviewed.

``blur`` (the pixel operation: which boxes, how strong) and ``copies`` (blurred copies of a results file's
images: originals untouched, EXIF and file times kept, atomic and resumable).
"""
