"""What a batch run reads: listing and sharding inputs, decoding images and video frames as displayed, EXIF."""
