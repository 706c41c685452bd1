"""Running the detector over inputs: worker-side loading, categories, the batch loop and job, rendering."""
